/* abi_test.c: tests of the C API of a library built by `dnnc compile --emit lib`
 * (here libmnist_mlp.a from ../mnist_mlp.dnn). `make test` runs it in two modes:
 *
 *   abi_test dump-input DATA_DIR OUT.npy
 *       Writes the first 37 MNIST test images (DATA_DIR/test-images-idx3-ubyte.gz,
 *       scaled by 1/255) as a float32 .npy file of shape (37, 784), for
 *       `dnnc predict` to run through the JIT.
 *
 *   abi_test check DATA_DIR WEIGHTS OTHER_WEIGHTS REF_IN.npy REF_OUT.npy BUILD_DIR
 *       Runs the checks below, prints one line per check (`ok: ...` or
 *       `FAIL: ...` with details) and exits non-zero if any failed. WEIGHTS are this
 *       model's weights (safetensors, from `dnnc train`), OTHER_WEIGHTS a valid
 *       safetensors file of a different model, REF_OUT.npy what `dnnc predict`
 *       gives for REF_IN.npy with WEIGHTS; scratch files go to BUILD_DIR.
 *
 * The checks:
 *   - the dnnc_idx helpers refuse a missing file (-1 and a message);
 *   - outputs equal the JIT's: the 37 rows in one batch (max abs difference
 *     <= 1e-5), one row at a time, in chunks of 20 + 17, and inside a full batch of
 *     MNIST_MLP_MAX_BATCH rows (<= 1e-4);
 *   - every bad argument is refused with a non-zero return and a non-empty message
 *     without ending the program: a null model for every function (the message then
 *     comes from last_error(NULL), checked in a fresh thread so that it can only come
 *     from that call); null data pointers; batches 0, -1, MAX + 1 and 1 << 40; a
 *     training batch that was not compiled; labels that do not fit u8; null, empty,
 *     missing, corrupt, truncated and mismatched weights files; saving into a
 *     directory that does not exist. Each is tried on a fresh instance (whose
 *     message can only come from that call) and on one long-lived instance, and
 *     after each failure the instance must still give bitwise the outputs it gave
 *     before;
 *   - save_weights then load_weights into another instance gives bitwise the same
 *     outputs (before and after training), and load_weights after training restores
 *     the original outputs;
 *   - training: 3 steps of 128 samples give finite losses and change the outputs; a
 *     step of 64 samples works too;
 *   - threads: two instances trained at once in two threads give bitwise the same
 *     losses and outputs as each other and as a third instance trained afterwards in
 *     the main thread; and an instance answering forwards in one thread is not
 *     disturbed by another instance training in another thread.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mnist_mlp.h"

enum {
    IN = MNIST_MLP_INPUT_SIZE,
    OUT = MNIST_MLP_OUTPUT_SIZE,
    MAXB = MNIST_MLP_MAX_BATCH,
    NREF = 37,      /* rows of the reference input */
    TRAIN_B = 128,  /* the training batch */
    STEPS = 5,      /* training steps of the thread tests */
    MSGLEN = 512,
};

/* ---- MNIST ---------------------------------------------------------------- */

/* All images of a split (scaled to [0, 1]); *n receives their count. */
static float *load_images(const char *dir, const char *split, int64_t *n) {
    char path[PATHLEN], name[64];
    say(name, sizeof name, "%s-images-idx3-ubyte.gz", split);
    join(path, dir, name);
    int64_t dims[4];
    int rank = dnnc_idx_dims(path, dims, 4);
    if (rank < 0) fatal("%s: %s", path, dnnc_idx_last_error());
    if (rank != 3 || dims[1] * dims[2] != IN) fatal("%s does not hold 28x28 images", path);
    *n = dims[0];
    float *x = xmalloc(sizeof(float) * (size_t)(*n * IN));
    if (dnnc_idx_read_f32(path, x, *n * IN, 1.0f / 255.0f) != 0)
        fatal("%s: %s", path, dnnc_idx_last_error());
    return x;
}

static int32_t *load_labels(const char *dir, const char *split, int64_t n) {
    char path[PATHLEN], name[64];
    say(name, sizeof name, "%s-labels-idx1-ubyte.gz", split);
    join(path, dir, name);
    int32_t *y = xmalloc(sizeof(int32_t) * (size_t)n);
    if (dnnc_idx_read_i32(path, y, n) != 0) fatal("%s: %s", path, dnnc_idx_last_error());
    return y;
}

static int dump_input(const char *dir, const char *out) {
    int64_t n;
    float *x = load_images(dir, "test", &n);
    if (n < NREF) fatal("only %lld test images", (long long)n);
    int rc = write_npy(out, x, NREF, IN);
    if (rc != 0) fprintf(stderr, "cannot write %s\n", out);
    else printf("wrote %s: %d x %d\n", out, NREF, IN);
    free(x);
    return rc != 0;
}

/* ---- comparing outputs ---------------------------------------------------- */

/* Whether a and b differ in any bit; if so `why` describes the first difference. */
static int differ(const float *a, const float *b, size_t n, char *why, size_t len) {
    for (size_t i = 0; i < n; i++) {
        uint32_t x, y;
        memcpy(&x, &a[i], 4);
        memcpy(&y, &b[i], 4);
        if (x != y) {
            say(why, len, "row %zu column %zu: %.9g vs %.9g", i / OUT, i % OUT, (double)a[i],
                     (double)b[i]);
            return 1;
        }
    }
    return 0;
}

/* ---- the state the checks share -------------------------------------------- */

static struct {
    const char *data, *weights, *other, *build;
    float *ref_in;   /* NREF x IN */
    float *ref_out;  /* NREF x OUT, from `dnnc predict` */
    float *train_x;  /* TRAIN_B x IN */
    int32_t *train_y;/* TRAIN_B */
    float base[NREF * OUT]; /* this library's outputs for ref_in with WEIGHTS */
} T;

/* A new instance with WEIGHTS loaded, or NULL (reported). */
static mnist_mlp_t *new_model(const char *what) {
    mnist_mlp_t *m = mnist_mlp_create();
    char msg[MSGLEN];
    if (!m) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(NULL));
        report(0, "%s: mnist_mlp_create returned NULL: %s", what, msg);
        return NULL;
    }
    if (mnist_mlp_load_weights(m, T.weights) != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        report(0, "%s: loading %s failed: %s", what, T.weights, msg);
        mnist_mlp_destroy(m);
        return NULL;
    }
    return m;
}

/* Whether a forward of ref_in on m gives exactly `expect`; if not, says why. */
static int forward_gives(mnist_mlp_t *m, const float *expect, char *why, size_t len) {
    float out[NREF * OUT];
    if (mnist_mlp_forward(m, T.ref_in, NREF, out) != 0) {
        char msg[MSGLEN];
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        say(why, len, "a forward then failed: %s", msg);
        return 0;
    }
    char d[256];
    if (differ(out, expect, NREF * OUT, d, sizeof d)) {
        say(why, len, "a forward then gave different outputs (%s)", d);
        return 0;
    }
    return 1;
}

/* ---- the dnnc_idx helpers ------------------------------------------------- */

struct idx_call {
    int which; /* 0 dims, 1 read_f32, 2 read_i32 (missing file), 3 read_f32 (wrong count) */
    char path[PATHLEN];
    int rc;
    char msg[MSGLEN];
};

static void *idx_thread(void *p) {
    struct idx_call *c = p;
    int64_t dims[4];
    float f[4];
    int32_t i[4];
    switch (c->which) {
    case 0: c->rc = dnnc_idx_dims(c->path, dims, 4); break;
    case 1: c->rc = dnnc_idx_read_f32(c->path, f, 4, 1.0f); break;
    case 2: c->rc = dnnc_idx_read_i32(c->path, i, 4); break;
    default: c->rc = dnnc_idx_read_f32(c->path, f, 4, 1.0f); break;
    }
    copy_msg(c->msg, sizeof c->msg, dnnc_idx_last_error());
    return NULL;
}

/* Runs fn(arg) in a new thread (so that thread-local messages start empty). */
static void in_fresh_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0) fatal("pthread_create failed");
    pthread_join(t, NULL);
}

static void check_idx(void) {
    static const char *names[] = {"dnnc_idx_dims", "dnnc_idx_read_f32", "dnnc_idx_read_i32",
                                  "dnnc_idx_read_f32 with the wrong count"};
    for (int w = 0; w < 4; w++) {
        struct idx_call c = {.which = w};
        if (w < 3) {
            join(c.path, T.build, "no-such-file-idx1-ubyte.gz");
            remove(c.path);
        } else {
            join(c.path, T.data, "test-labels-idx1-ubyte.gz");
        }
        in_fresh_thread(idx_thread, &c);
        int ok = c.rc == -1 && c.msg[0];
        report(ok, "%s on %s%s: returned %d, dnnc_idx_last_error: \"%s\"", names[w],
               w < 3 ? "a missing file " : "", c.path, c.rc, c.msg);
    }
}

/* ---- outputs equal to the JIT's ------------------------------------------- */

static void check_jit(mnist_mlp_t *m) {
    float out[NREF * OUT];
    char msg[MSGLEN];
    if (mnist_mlp_forward(m, T.ref_in, NREF, out) != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        report(0, "forward of %d rows failed: %s", NREF, msg);
        return;
    }
    double d = max_abs_diff(out, T.ref_out, NREF * OUT);
    report(d <= 1e-5, "forward of %d rows in one batch vs dnnc predict: max abs difference %.3g "
           "(limit 1e-5)", NREF, d);

    /* One row at a time. */
    float rows[NREF * OUT];
    int rc = 0;
    for (int r = 0; r < NREF && rc == 0; r++)
        rc = mnist_mlp_forward(m, T.ref_in + r * IN, 1, rows + r * OUT);
    if (rc != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        report(0, "forward with batch 1 failed: %s", msg);
    } else {
        d = max_abs_diff(rows, T.ref_out, NREF * OUT);
        report(d <= 1e-4, "forward one row at a time vs dnnc predict: max abs difference %.3g "
               "(limit 1e-4)", d);
    }

    /* Two chunks, 20 + 17. */
    rc = mnist_mlp_forward(m, T.ref_in, 20, rows);
    if (rc == 0) rc = mnist_mlp_forward(m, T.ref_in + 20 * IN, NREF - 20, rows + 20 * OUT);
    if (rc != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        report(0, "forward in chunks of 20 + 17 failed: %s", msg);
    } else {
        d = max_abs_diff(rows, T.ref_out, NREF * OUT);
        report(d <= 1e-4, "forward in chunks of 20 + 17 vs dnnc predict: max abs difference %.3g "
               "(limit 1e-4)", d);
    }

    /* A full batch: the reference rows first, then training images. */
    float *big_in = xmalloc(sizeof(float) * MAXB * IN);
    float *big_out = xmalloc(sizeof(float) * MAXB * OUT);
    memcpy(big_in, T.ref_in, sizeof(float) * NREF * IN);
    for (int r = NREF; r < MAXB; r++)
        memcpy(big_in + r * IN, T.train_x + (r % TRAIN_B) * IN, sizeof(float) * IN);
    if (mnist_mlp_forward(m, big_in, MAXB, big_out) != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        report(0, "forward of a full batch (%d rows) failed: %s", MAXB, msg);
    } else {
        d = max_abs_diff(big_out, T.ref_out, NREF * OUT);
        int finite = all_finite(big_out, (size_t)MAXB * OUT);
        report(d <= 1e-4 && finite, "forward of a full batch (%d rows): the first %d vs dnnc "
               "predict: max abs difference %.3g (limit 1e-4)%s", MAXB, NREF, d,
               finite ? "" : "; some outputs are not finite");
    }
    free(big_in);
    free(big_out);
}

/* ---- bad arguments -------------------------------------------------------- */

/* The null-model calls, each in a fresh thread. */
struct null_call {
    int which; /* 0 forward, 1 train_step, 2 load_weights, 3 save_weights */
    int rc;
    char msg[MSGLEN];
};

static void *null_thread(void *p) {
    struct null_call *c = p;
    float out[NREF * OUT], loss = 0;
    char path[PATHLEN];
    switch (c->which) {
    case 0: c->rc = mnist_mlp_forward(NULL, T.ref_in, NREF, out); break;
    case 1: c->rc = mnist_mlp_train_step(NULL, T.train_x, T.train_y, TRAIN_B, &loss); break;
    case 2: c->rc = mnist_mlp_load_weights(NULL, T.weights); break;
    default: c->rc = mnist_mlp_save_weights(NULL, join(path, T.build, "null-model.safetensors"));
    }
    copy_msg(c->msg, sizeof c->msg, mnist_mlp_last_error(NULL));
    return NULL;
}

static void check_null_model(void) {
    static const char *names[] = {"forward", "train_step", "load_weights", "save_weights"};
    for (int w = 0; w < 4; w++) {
        struct null_call c = {.which = w};
        in_fresh_thread(null_thread, &c);
        report(c.rc != 0 && c.msg[0], "%s with a null model: returned %d, last_error(NULL): \"%s\"",
               names[w], c.rc, c.msg);
    }
    mnist_mlp_destroy(NULL);
    report(1, "destroy(NULL) is a no-op");
}

/* One bad call, made on a model. */
struct bad {
    const char *what;
    int (*call)(mnist_mlp_t *m, const void *arg);
    const void *arg;
    const char *want; /* '|'-separated words the message must contain one of, or NULL */
};

struct fwd_args {
    const float *in;
    int64_t batch;
    float *out;
};

static int call_forward(mnist_mlp_t *m, const void *a) {
    const struct fwd_args *f = a;
    return mnist_mlp_forward(m, f->in, f->batch, f->out);
}

struct train_args {
    const float *x;
    const int32_t *y;
    int64_t batch;
    float *loss;
};

static int call_train(mnist_mlp_t *m, const void *a) {
    const struct train_args *t = a;
    return mnist_mlp_train_step(m, t->x, t->y, t->batch, t->loss);
}

static int call_load(mnist_mlp_t *m, const void *path) {
    return mnist_mlp_load_weights(m, path);
}

static int call_save(mnist_mlp_t *m, const void *path) {
    return mnist_mlp_save_weights(m, path);
}

/* The bad call must fail with a message on a fresh instance and on `shared`, and
 * both must then still give the outputs of WEIGHTS. */
static void refuse(mnist_mlp_t *shared, const struct bad *b) {
    struct text fail = {.n = 0};
    char msg[MSGLEN] = "", why[MSGLEN];
    int rc = 0;
    mnist_mlp_t *fresh = new_model(b->what);
    if (!fresh) return;
    rc = b->call(fresh, b->arg);
    copy_msg(msg, sizeof msg, mnist_mlp_last_error(fresh));
    if (rc == 0) add(&fail, "accepted (returned 0); ");
    else if (!msg[0]) add(&fail, "returned %d with an empty last_error; ", rc);
    else if (b->want && !contains_any(msg, b->want))
        add(&fail, "the message mentions none of %s; ", b->want);
    if (!forward_gives(fresh, T.base, why, sizeof why)) add(&fail, "fresh instance: %s; ", why);
    mnist_mlp_destroy(fresh);

    int rc2 = b->call(shared, b->arg);
    char msg2[MSGLEN];
    copy_msg(msg2, sizeof msg2, mnist_mlp_last_error(shared));
    if (rc2 == 0) add(&fail, "accepted by the long-lived instance; ");
    else if (!msg2[0]) add(&fail, "long-lived instance: empty last_error; ");
    if (!forward_gives(shared, T.base, why, sizeof why))
        add(&fail, "long-lived instance: %s; ", why);

    if (fail.n) report(0, "%s: %s(rc %d, last_error \"%s\")", b->what, fail.s, rc, msg);
    else report(1, "%s refused (rc %d): \"%s\"", b->what, rc, msg);
}

static void check_bad_arguments(mnist_mlp_t *m) {
    char missing[PATHLEN], garbage[PATHLEN], truncated[PATHLEN], nodir[PATHLEN];
    char path[PATHLEN];

    /* Files for load_weights. */
    join(missing, T.build, "no-such-weights.safetensors");
    remove(missing);
    join(garbage, T.build, "garbage.safetensors");
    unsigned char junk[100];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        s = s * 1103515245u + 12345u;
        junk[i] = (unsigned char)(s >> 16);
    }
    if (write_file(garbage, junk, sizeof junk) != 0) fatal("cannot write %s", garbage);
    join(truncated, T.build, "truncated.safetensors");
    size_t len;
    unsigned char *w = read_file(T.weights, &len);
    if (!w) fatal("cannot read %s", T.weights);
    if (write_file(truncated, w, len / 2) != 0) fatal("cannot write %s", truncated);
    free(w);
    join(path, T.build, "no-such-dir");
    remove(path);
    join(nodir, path, "saved.safetensors");

    /* Buffers with room for MAXB + 1 rows, so that a wrongly accepted MAXB + 1 stays
     * inside them. */
    float *in = xmalloc(sizeof(float) * (MAXB + 1) * IN);
    float *out = xmalloc(sizeof(float) * (MAXB + 1) * OUT);
    int32_t *y = xmalloc(sizeof(int32_t) * (MAXB + 1));
    for (int r = 0; r < MAXB + 1; r++) {
        memcpy(in + r * IN, T.train_x + (r % TRAIN_B) * IN, sizeof(float) * IN);
        y[r] = T.train_y[r % TRAIN_B];
    }
    int32_t *y300 = xmalloc(sizeof(int32_t) * TRAIN_B);
    int32_t *yneg = xmalloc(sizeof(int32_t) * TRAIN_B);
    memcpy(y300, T.train_y, sizeof(int32_t) * TRAIN_B);
    memcpy(yneg, T.train_y, sizeof(int32_t) * TRAIN_B);
    y300[5] = 300;
    yneg[TRAIN_B - 1] = -1;
    int32_t *y10 = xmalloc(sizeof(int32_t) * TRAIN_B);
    memcpy(y10, T.train_y, sizeof(int32_t) * TRAIN_B);
    y10[7] = 10; /* fits the u8 field, but there are 10 classes */
    float loss = 0;

    const int64_t huge = (int64_t)1 << 40;
    struct fwd_args f_in = {NULL, 1, out}, f_out = {in, 1, NULL}, f0 = {in, 0, out},
                    fneg = {in, -1, out}, fmax = {in, MAXB + 1, out}, fhuge = {in, huge, out};
    struct train_args t_x = {NULL, y, TRAIN_B, &loss}, t_y = {in, NULL, TRAIN_B, &loss},
                      t_loss = {in, y, TRAIN_B, NULL}, t0 = {in, y, 0, &loss},
                      tneg = {in, y, -1, &loss}, tmax = {in, y, MAXB + 1, &loss},
                      thuge = {in, y, huge, &loss}, t37 = {in, y, 37, &loss},
                      t300 = {in, y300, TRAIN_B, &loss}, tm1 = {in, yneg, TRAIN_B, &loss},
                      t10 = {in, y10, TRAIN_B, &loss};

    const struct bad cases[] = {
        {"forward with a null input", call_forward, &f_in, NULL},
        {"forward with a null output", call_forward, &f_out, NULL},
        {"forward with batch 0", call_forward, &f0, NULL},
        {"forward with batch -1", call_forward, &fneg, NULL},
        {"forward with batch MAX_BATCH + 1", call_forward, &fmax, NULL},
        {"forward with batch 1 << 40", call_forward, &fhuge, NULL},
        {"train_step with a null image", call_train, &t_x, NULL},
        {"train_step with a null label", call_train, &t_y, NULL},
        {"train_step with a null loss", call_train, &t_loss, NULL},
        {"train_step with batch 0", call_train, &t0, NULL},
        {"train_step with batch -1", call_train, &tneg, NULL},
        {"train_step with batch MAX_BATCH + 1", call_train, &tmax, NULL},
        {"train_step with batch 1 << 40", call_train, &thuge, NULL},
        {"train_step with batch 37 (not compiled)", call_train, &t37, NULL},
        {"train_step with label 300", call_train, &t300, NULL},
        {"train_step with label -1", call_train, &tm1, NULL},
        {"train_step with label 10 of 10 classes", call_train, &t10, "0 to 9"},
        {"load_weights with a null path", call_load, NULL, NULL},
        {"load_weights with an empty path", call_load, "", NULL},
        {"load_weights with a missing file", call_load, missing, missing},
        {"load_weights with a corrupt file", call_load, garbage, NULL},
        {"load_weights with a truncated file", call_load, truncated, NULL},
        {"load_weights with another model's weights", call_load, T.other, "fc1|fc2|head|missing"},
        {"save_weights with a null path", call_save, NULL, NULL},
        {"save_weights with an empty path", call_save, "", NULL},
        {"save_weights into a missing directory", call_save, nodir, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) refuse(m, &cases[i]);

    FILE *f = fopen(nodir, "rb");
    report(f == NULL, "save_weights into a missing directory created no file");
    if (f) fclose(f);

    char why[MSGLEN] = "";
    int ok = forward_gives(m, T.base, why, sizeof why);
    report(ok, "after all %zu failures the long-lived instance gives its original outputs%s%s",
           sizeof cases / sizeof cases[0], sep(why), why);

    free(in);
    free(out);
    free(y);
    free(y300);
    free(yneg);
    free(y10);
}

/* A step whose loss is NaN (a NaN pixel) is an error, and the model keeps the weights
 * of before the step; the next good step succeeds and clears last_error. */
static void check_nan_step(void) {
    char msg[MSGLEN], why[MSGLEN] = "";
    mnist_mlp_t *m = new_model("a NaN step");
    if (!m) return;
    float *x = xmalloc(sizeof(float) * TRAIN_B * IN);
    memcpy(x, T.train_x, sizeof(float) * TRAIN_B * IN);
    x[3 * IN + 100] = NAN;
    float loss = 0;
    int rc = mnist_mlp_train_step(m, x, T.train_y, TRAIN_B, &loss);
    copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
    report(rc == -2 && strstr(msg, "loss") != NULL,
           "train_step on a batch with a NaN pixel returns -2 (rc %d): \"%s\"", rc, msg);
    int same = forward_gives(m, T.base, why, sizeof why);
    report(same, "... and the model keeps the weights of before the step%s%s", sep(why), why);
    rc = mnist_mlp_train_step(m, T.train_x, T.train_y, TRAIN_B, &loss);
    copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
    report(rc == 0 && isfinite(loss) && msg[0] == '\0',
           "... the next good step succeeds (rc %d, loss %.6g) and clears last_error (\"%s\")",
           rc, (double)loss, msg);
    free(x);
    mnist_mlp_destroy(m);
}

/* ---- save and load -------------------------------------------------------- */

/* Saves m to BUILD_DIR/name, loads that into a new instance, and compares outputs. */
static void round_trip(mnist_mlp_t *m, const char *name, const char *what) {
    char path[PATHLEN], msg[MSGLEN], why[MSGLEN];
    float out[NREF * OUT];
    join(path, T.build, name);
    if (mnist_mlp_forward(m, T.ref_in, NREF, out) != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        report(0, "%s: forward failed: %s", what, msg);
        return;
    }
    if (mnist_mlp_save_weights(m, path) != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        report(0, "%s: save_weights(%s) failed: %s", what, path, msg);
        return;
    }
    mnist_mlp_t *m2 = mnist_mlp_create();
    if (!m2) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(NULL));
        report(0, "%s: create failed: %s", what, msg);
        return;
    }
    if (mnist_mlp_load_weights(m2, path) != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m2));
        report(0, "%s: load_weights(%s) failed: %s", what, path, msg);
    } else {
        int same = forward_gives(m2, out, why, sizeof why);
        report(same, "%s: saved to %s, loaded into a new instance: %s", what, path,
               same ? "bitwise equal outputs" : why);
    }
    mnist_mlp_destroy(m2);
}

/* ---- training ------------------------------------------------------------- */

static void check_training(void) {
    char msg[MSGLEN], why[MSGLEN];
    mnist_mlp_t *m = new_model("training");
    if (!m) return;
    float before[NREF * OUT], after[NREF * OUT], loss[3] = {0, 0, 0};
    int rc = mnist_mlp_forward(m, T.ref_in, NREF, before);
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = mnist_mlp_train_step(m, T.train_x, T.train_y, TRAIN_B, &loss[i]);
    if (rc == 0) rc = mnist_mlp_forward(m, T.ref_in, NREF, after);
    if (rc != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        report(0, "training: a call failed: %s", msg);
        mnist_mlp_destroy(m);
        return;
    }
    report(all_finite(loss, 3), "3 train_steps of %d samples: losses %.6g %.6g %.6g (finite)",
           TRAIN_B, (double)loss[0], (double)loss[1], (double)loss[2]);
    report(loss[2] < loss[0], "the loss on the same batch went down over 3 steps (%.6g -> %.6g)",
           (double)loss[0], (double)loss[2]);
    report(differ(before, after, NREF * OUT, why, sizeof why) && all_finite(after, NREF * OUT),
           "training changed the outputs (max abs change %.3g) and they are finite",
           max_abs_diff(before, after, NREF * OUT));

    float l64 = NAN;
    rc = mnist_mlp_train_step(m, T.train_x, T.train_y, 64, &l64);
    copy_msg(msg, sizeof msg, rc ? mnist_mlp_last_error(m) : "");
    report(rc == 0 && isfinite(l64), "train_step with batch 64: returned %d, loss %.6g%s%s", rc,
           (double)l64, sep(msg), msg);

    round_trip(m, "saved_trained.safetensors", "save/load round trip after training");

    rc = mnist_mlp_load_weights(m, T.weights);
    copy_msg(msg, sizeof msg, rc ? mnist_mlp_last_error(m) : "");
    int same = rc == 0 && forward_gives(m, T.base, why, sizeof why);
    report(same, "load_weights after training restores the original outputs%s%s",
           rc ? ": load failed: " : same ? "" : ": ", rc ? msg : same ? "" : why);
    mnist_mlp_destroy(m);
}

/* ---- threads -------------------------------------------------------------- */

struct run {
    pthread_barrier_t *start; /* if set, wait here once the instance is ready */
    atomic_int *wait_for;     /* if set, start training once this is non-zero */
    atomic_int *done;         /* if set, set to 1 at the end */
    float losses[STEPS];
    float out[NREF * OUT];
    char err[MSGLEN]; /* empty on success */
};

/* Creates an instance, loads WEIGHTS, runs STEPS train_steps on the training batch
 * and a forward of ref_in. */
static void *run_training(void *p) {
    struct run *r = p;
    char msg[MSGLEN];
    r->err[0] = '\0';
    mnist_mlp_t *m = mnist_mlp_create();
    if (!m) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(NULL));
        say(r->err, sizeof r->err, "create failed: %s", msg);
    } else if (mnist_mlp_load_weights(m, T.weights) != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        say(r->err, sizeof r->err, "load_weights failed: %s", msg);
    }
    if (r->start) pthread_barrier_wait(r->start);
    if (r->wait_for)
        while (!atomic_load(r->wait_for)) sched_yield();
    for (int i = 0; i < STEPS && !r->err[0]; i++) {
        if (mnist_mlp_train_step(m, T.train_x, T.train_y, TRAIN_B, &r->losses[i]) != 0) {
            copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
            say(r->err, sizeof r->err, "train_step %d failed: %s", i, msg);
        }
    }
    if (!r->err[0] && mnist_mlp_forward(m, T.ref_in, NREF, r->out) != 0) {
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        say(r->err, sizeof r->err, "forward failed: %s", msg);
    }
    mnist_mlp_destroy(m);
    if (r->done) atomic_store(r->done, 1);
    return NULL;
}

/* Runs forwards on an instance until `done`, comparing each with `initial`. */
struct watch {
    mnist_mlp_t *m;
    const float *initial;
    atomic_int *running, *done;
    long forwards, mismatches;
    char first_mismatch[MSGLEN];
    char err[MSGLEN];
};

static void *watch_forwards(void *p) {
    struct watch *w = p;
    float out[NREF * OUT];
    for (;;) {
        int finished = atomic_load(w->done);
        if (mnist_mlp_forward(w->m, T.ref_in, NREF, out) != 0) {
            copy_msg(w->err, sizeof w->err, mnist_mlp_last_error(w->m));
            break;
        }
        w->forwards++;
        char why[256];
        if (differ(out, w->initial, NREF * OUT, why, sizeof why) && w->mismatches++ == 0)
            say(w->first_mismatch, sizeof w->first_mismatch, "forward %ld: %s", w->forwards,
                     why);
        atomic_store(w->running, 1);
        if (finished) break;
    }
    atomic_store(w->running, 1);
    return NULL;
}

static int same_run(const struct run *a, const struct run *b, char *why, size_t len) {
    char d[256];
    for (int i = 0; i < STEPS; i++) {
        if (memcmp(&a->losses[i], &b->losses[i], sizeof(float)) != 0) {
            say(why, len, "loss of step %d: %.9g vs %.9g", i, (double)a->losses[i],
                     (double)b->losses[i]);
            return 0;
        }
    }
    if (differ(a->out, b->out, NREF * OUT, d, sizeof d)) {
        say(why, len, "outputs after training: %s", d);
        return 0;
    }
    return 1;
}

static void check_threads(void) {
    /* Two instances trained at once, then a third in this thread. */
    static struct run a, b, c;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    a = (struct run){.start = &bar};
    b = (struct run){.start = &bar};
    c = (struct run){.start = NULL};
    pthread_t ta, tb;
    if (pthread_create(&ta, NULL, run_training, &a) != 0 ||
        pthread_create(&tb, NULL, run_training, &b) != 0)
        fatal("pthread_create failed");
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&bar);
    run_training(&c);
    char why[MSGLEN] = "";
    if (a.err[0] || b.err[0] || c.err[0]) {
        report(0, "training in threads: thread 1: %s; thread 2: %s; main thread: %s",
               a.err[0] ? a.err : "ok", b.err[0] ? b.err : "ok", c.err[0] ? c.err : "ok");
        return;
    }
    int ok = same_run(&a, &b, why, sizeof why);
    report(ok, "two instances trained at once in two threads (%d steps): bitwise equal losses and "
           "outputs%s%s", STEPS, sep(why), why);
    why[0] = '\0';
    ok = same_run(&a, &c, why, sizeof why) && same_run(&b, &c, why, sizeof why);
    report(ok, "... and equal to the same steps in the main thread afterwards (last loss %.6g)%s%s",
           (double)c.losses[STEPS - 1], sep(why), why);

    /* Instance B answers forwards in one thread while A trains in another. */
    mnist_mlp_t *m = new_model("independence");
    if (!m) return;
    static float initial[NREF * OUT];
    if (mnist_mlp_forward(m, T.ref_in, NREF, initial) != 0) {
        char msg[MSGLEN];
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        report(0, "independence: forward failed: %s", msg);
        mnist_mlp_destroy(m);
        return;
    }
    atomic_int running = 0, done = 0;
    static struct run t;
    t = (struct run){.wait_for = &running, .done = &done};
    struct watch w = {.m = m, .initial = initial, .running = &running, .done = &done};
    pthread_t tt, tw;
    if (pthread_create(&tw, NULL, watch_forwards, &w) != 0 ||
        pthread_create(&tt, NULL, run_training, &t) != 0)
        fatal("pthread_create failed");
    pthread_join(tt, NULL);
    pthread_join(tw, NULL);
    ok = !w.err[0] && w.mismatches == 0 && w.forwards >= 2;
    report(ok, "while instance A trained in one thread, instance B gave its initial outputs in "
           "%ld of %ld forwards in another%s%s%s%s", w.forwards - w.mismatches, w.forwards,
           w.err[0] ? "; a forward failed: " : "", w.err,
           w.mismatches ? "; first mismatch: " : "", w.mismatches ? w.first_mismatch : "");
    if (t.err[0]) {
        report(0, "the training thread: %s", t.err);
    } else {
        why[0] = '\0';
        ok = same_run(&t, &c, why, sizeof why);
        report(ok, "... and A, trained meanwhile, gave the same losses and outputs as before%s%s",
               sep(why), why);
    }
    why[0] = '\0';
    ok = forward_gives(m, initial, why, sizeof why);
    report(ok, "... and B still gives its initial outputs afterwards%s%s", sep(why), why);
    mnist_mlp_destroy(m);
}

/* ---- main ----------------------------------------------------------------- */

static int usage(void) {
    fprintf(stderr,
            "usage: abi_test dump-input DATA_DIR OUT.npy\n"
            "       abi_test check DATA_DIR WEIGHTS OTHER_WEIGHTS REF_IN.npy REF_OUT.npy "
            "BUILD_DIR\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "dump-input") == 0) return dump_input(argv[2], argv[3]);
    if (argc != 8 || strcmp(argv[1], "check") != 0) return usage();
    T.data = argv[2];
    T.weights = argv[3];
    T.other = argv[4];
    T.build = argv[7];

    char why[MSGLEN];
    T.ref_in = read_npy(argv[5], NREF, IN, why, sizeof why);
    if (!T.ref_in) fatal("%s", why);
    T.ref_out = read_npy(argv[6], NREF, OUT, why, sizeof why);
    if (!T.ref_out) fatal("%s", why);
    int64_t n;
    float *train = load_images(T.data, "train", &n);
    if (n < TRAIN_B) fatal("only %lld training images", (long long)n);
    int32_t *labels = load_labels(T.data, "train", n);
    T.train_x = xmalloc(sizeof(float) * TRAIN_B * IN);
    T.train_y = xmalloc(sizeof(int32_t) * TRAIN_B);
    memcpy(T.train_x, train, sizeof(float) * TRAIN_B * IN);
    memcpy(T.train_y, labels, sizeof(int32_t) * TRAIN_B);
    free(train);
    free(labels);
    for (int i = 0; i < TRAIN_B; i++)
        if (T.train_y[i] < 0 || T.train_y[i] > 9) fatal("training label %d is %d", i, T.train_y[i]);

    check_idx();

    mnist_mlp_t *m = new_model("the long-lived instance");
    if (!m) return 1;
    if (mnist_mlp_forward(m, T.ref_in, NREF, T.base) != 0) {
        char msg[MSGLEN];
        copy_msg(msg, sizeof msg, mnist_mlp_last_error(m));
        fatal("forward of the reference rows failed: %s", msg);
    }
    check_jit(m);
    check_null_model();
    check_bad_arguments(m);
    round_trip(m, "saved.safetensors", "save/load round trip");
    mnist_mlp_destroy(m);
    check_training();
    check_nan_step();
    check_threads();

    free(T.ref_in);
    free(T.ref_out);
    free(T.train_x);
    free(T.train_y);
    printf("%d checks, %d failed\n", n_checks, n_failed);
    return n_failed != 0;
}
