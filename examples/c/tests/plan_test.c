/* plan_test.c: tests of the C API of a multi-model library: libmnist_gan.a, built by
 * `dnnc compile --emit lib` from ../mnist_gan.dnn (a generator `G` and a critic `D`,
 * trained by a plan of two steps). `make test` runs it in two modes:
 *
 *   plan_test dump-noise OUT.npy
 *       Writes 37 rows of noise for G (shape (37, 64), values in [-2, 2] from a fixed
 *       linear congruential generator) as a float32 .npy file, for `dnnc predict`.
 *
 *   plan_test check DATA_DIR WEIGHTS NOISE.npy REF_OUT.npy BUILD_DIR
 *       Runs the checks below, one line each, and exits non-zero if any failed.
 *       WEIGHTS are the weights the library embeds; REF_OUT.npy is what `dnnc predict`
 *       (which runs the first model, G) gives for NOISE.npy.
 *
 * The checks:
 *   - each model has its own forward: G's outputs equal the JIT's (max abs difference
 *     <= 1e-5), D scores G's images with finite logits, and one row at a time gives
 *     what a whole batch gives; loading WEIGHTS gives the embedded weights' outputs;
 *   - train_step runs the whole plan and writes one finite loss per step (critic,
 *     generator), and both models' outputs change; a second instance fed the same
 *     batch gives bitwise the same losses and outputs;
 *   - save_weights then load_weights into a fresh instance gives bitwise the same
 *     outputs of both models;
 *   - bad arguments (a null model, null pointers, batches out of range, a batch
 *     train_step was not compiled for) are refused with a message, and leave the
 *     instance's outputs as they were.
 */
#define _POSIX_C_SOURCE 200809L

#include "check.h"
#include "mnist_gan.h"

enum {
    Z = MNIST_GAN_G_INPUT_SIZE,
    PIX = MNIST_GAN_G_OUTPUT_SIZE,
    LOGIT = MNIST_GAN_D_OUTPUT_SIZE,
    MAXB = MNIST_GAN_MAX_BATCH,
    NREF = 37,
    STEPS = 2, /* the plan's steps: critic, generator */
    MSGLEN = 512,
};

/* The same noise on every run and every machine. */
static void noise(float *z, size_t n) {
    uint64_t s = 0x2545F4914F6CDD1DULL;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        z[i] = (float)((double)(s >> 40) / (double)(1ULL << 24) * 4.0 - 2.0);
    }
}

/* G's images of the reference noise and D's logits of them. */
struct outputs {
    float images[NREF * PIX];
    float logits[NREF * LOGIT];
};

static int run_models(mnist_gan_t *m, const float *z, struct outputs *o) {
    if (mnist_gan_G_forward(m, z, NREF, o->images) != 0) return -1;
    return mnist_gan_D_forward(m, o->images, NREF, o->logits);
}

static int same_bits(const struct outputs *a, const struct outputs *b) {
    return memcmp(a, b, sizeof *a) == 0;
}

static mnist_gan_t *new_model(void) {
    mnist_gan_t *m = mnist_gan_create();
    if (!m) fatal("mnist_gan_create: %s", mnist_gan_last_error(NULL));
    return m;
}

/* The first MAXB training images, scaled as the dataset block scales them. */
static float *real_batch(const char *dir) {
    char path[PATHLEN];
    join(path, dir, "train-images-idx3-ubyte.gz");
    int64_t dims[3];
    if (dnnc_idx_dims(path, dims, 3) != 3 || dims[0] < MAXB || dims[1] * dims[2] != PIX)
        fatal("%s does not hold %d images of 28x28: %s", path, MAXB, dnnc_idx_last_error());
    float *x = xmalloc(sizeof(float) * (size_t)(dims[0] * PIX));
    if (dnnc_idx_read_f32(path, x, dims[0] * PIX, 1.0f / 127.5f) != 0)
        fatal("%s: %s", path, dnnc_idx_last_error());
    for (size_t i = 0; i < (size_t)MAXB * PIX; i++) x[i] -= 1.0f;
    return x;
}

/* A call that must fail with a message (read right after it). */
static void refused(const char *what, int rc, const mnist_gan_t *m) {
    char msg[MSGLEN];
    copy_msg(msg, sizeof msg, mnist_gan_last_error(m));
    report(rc != 0 && msg[0] && strcmp(msg, "(null)") != 0, "%s is refused: %s", what, msg);
}

static void check_forwards(const char *weights, const char *ref_in, const char *ref_out) {
    char why[MSGLEN];
    float *z = read_npy(ref_in, NREF, Z, why, sizeof why);
    float *expect = z ? read_npy(ref_out, NREF, PIX, why, sizeof why) : NULL;
    if (!expect) fatal("%s", why);
    mnist_gan_t *m = new_model();
    static struct outputs o;
    report(run_models(m, z, &o) == 0, "G_forward and D_forward run on %d rows", NREF);
    double d = max_abs_diff(o.images, expect, (size_t)NREF * PIX);
    report(d <= 1e-5, "G_forward equals dnnc predict (max abs difference %.3g)", d);
    report(all_finite(o.logits, NREF * LOGIT), "D_forward gives finite logits of G's images");
    int rows_same = 1;
    for (int r = 0; r < NREF; r++) {
        float img[PIX], logit[LOGIT];
        if (mnist_gan_G_forward(m, z + (size_t)r * Z, 1, img) != 0 ||
            mnist_gan_D_forward(m, img, 1, logit) != 0)
            rows_same = 0;
        else
            rows_same &= max_abs_diff(img, o.images + (size_t)r * PIX, PIX) <= 1e-5 &&
                         max_abs_diff(logit, o.logits + (size_t)r * LOGIT, LOGIT) <= 1e-4;
    }
    report(rows_same, "one row at a time gives what the batch of %d gives, for G and D", NREF);
    mnist_gan_t *w = new_model();
    static struct outputs from_file;
    int rc = mnist_gan_load_weights(w, weights);
    run_models(w, z, &from_file);
    report(rc == 0 && same_bits(&o, &from_file),
           "load_weights of the embedded weights' file gives bitwise the same outputs");
    mnist_gan_destroy(w);
    mnist_gan_destroy(m);
    free(z);
    free(expect);
}

static void check_training(const char *dir, const char *ref_in, const char *build) {
    char why[MSGLEN], path[PATHLEN];
    float *z = read_npy(ref_in, NREF, Z, why, sizeof why);
    if (!z) fatal("%s", why);
    float *x = real_batch(dir);
    mnist_gan_t *a = new_model(), *b = new_model();
    static struct outputs before, after_a, after_b, loaded;
    if (run_models(a, z, &before) != 0) fatal("forward: %s", mnist_gan_last_error(a));

    float la[STEPS] = {NAN, NAN}, lb[STEPS] = {NAN, NAN};
    int rc = mnist_gan_train_step(a, x, MAXB, la);
    report(rc == 0 && all_finite(la, STEPS), "train_step gives a finite loss per step: critic %.4f, generator %.4f%s%s",
           (double)la[0], (double)la[1], rc ? ": " : "", rc ? mnist_gan_last_error(a) : "");
    report(la[0] > 0 && la[1] > 0, "both losses (binary cross-entropies) are positive");
    run_models(a, z, &after_a);
    report(max_abs_diff(before.images, after_a.images, (size_t)NREF * PIX) > 0,
           "the generator step changed G's images");
    report(max_abs_diff(before.logits, after_a.logits, NREF * LOGIT) > 0,
           "the steps changed D's logits");
    mnist_gan_train_step(b, x, MAXB, lb);
    run_models(b, z, &after_b);
    report(memcmp(la, lb, sizeof la) == 0 && same_bits(&after_a, &after_b),
           "a second instance fed the same batch gives bitwise the same losses and outputs");

    join(path, build, "gan_trained.safetensors");
    rc = mnist_gan_save_weights(a, path);
    mnist_gan_t *c = new_model();
    int lrc = rc == 0 ? mnist_gan_load_weights(c, path) : -1;
    run_models(c, z, &loaded);
    report(rc == 0 && lrc == 0 && same_bits(&after_a, &loaded),
           "save_weights then load_weights gives bitwise the same outputs of both models");

    /* Bad arguments: refused with a message, the outputs untouched. */
    float out[(MAXB + 1) * PIX], loss[STEPS];
    refused("G_forward on a null model", mnist_gan_G_forward(NULL, z, 1, out), NULL);
    refused("D_forward with a null input", mnist_gan_D_forward(a, NULL, 1, out), a);
    refused("G_forward with a null output", mnist_gan_G_forward(a, z, 1, NULL), a);
    refused("G_forward on batch 0", mnist_gan_G_forward(a, z, 0, out), a);
    refused("D_forward on batch MAX + 1", mnist_gan_D_forward(a, x, MAXB + 1, out), a);
    refused("train_step with a null loss", mnist_gan_train_step(a, x, MAXB, NULL), a);
    refused("train_step on a batch it was not compiled for (32)",
            mnist_gan_train_step(a, x, 32, loss), a);
    refused("train_step on batch -1", mnist_gan_train_step(a, x, -1, loss), a);
    static struct outputs still;
    run_models(a, z, &still);
    report(same_bits(&after_a, &still), "after the refused calls the outputs are as before");

    mnist_gan_destroy(a);
    mnist_gan_destroy(b);
    mnist_gan_destroy(c);
    free(x);
    free(z);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "dump-noise") == 0) {
        static float z[NREF * Z];
        noise(z, NREF * Z);
        if (write_npy(argv[2], z, NREF, Z) != 0) {
            fprintf(stderr, "cannot write %s\n", argv[2]);
            return 1;
        }
        printf("wrote %s: %d x %d\n", argv[2], NREF, Z);
        return 0;
    }
    if (argc != 7 || strcmp(argv[1], "check") != 0) {
        fprintf(stderr,
                "usage: plan_test dump-noise OUT.npy\n"
                "       plan_test check DATA_DIR WEIGHTS NOISE.npy REF_OUT.npy BUILD_DIR\n");
        return 2;
    }
    check_forwards(argv[3], argv[4], argv[5]);
    check_training(argv[2], argv[4], argv[6]);
    printf("%d checks, %d failed\n", n_checks, n_failed);
    return n_failed != 0;
}
