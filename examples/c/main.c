/* Classify the MNIST test digits with a model compiled by `dnnc compile`, then
 * fine-tune it for one epoch on the training digits through the C API and classify
 * again.
 *
 *   usage: mnist [DATA_DIR [WEIGHTS_IN [WEIGHTS_OUT]]]
 *
 * DATA_DIR holds the IDX files (default ../data/mnist); WEIGHTS_IN, if given and not
 * "-", replaces the weights embedded in the library; WEIGHTS_OUT, if given, receives
 * the fine-tuned weights (a safetensors file `dnnc eval` reads).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnist_mlp.h"

enum { IN = MNIST_MLP_INPUT_SIZE, OUT = MNIST_MLP_OUTPUT_SIZE, B = MNIST_MLP_MAX_BATCH };

/* A split: n images of IN floats in [0, 1] and n labels. */
struct split {
    int64_t n;
    float *images;
    int32_t *labels;
};

static int load(const char *dir, const char *name, struct split *s) {
    char images[1024], labels[1024];
    int64_t dims[4];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, name);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, name);
    int rank = dnnc_idx_dims(images, dims, 4);
    if (rank != 3 || dims[1] * dims[2] != IN) {
        fprintf(stderr, "%s: %s\n", images, rank < 0 ? dnnc_idx_last_error() : "not 28x28 images");
        return -1;
    }
    s->n = dims[0];
    s->images = malloc(sizeof(float) * (size_t)(s->n * IN));
    s->labels = malloc(sizeof(int32_t) * (size_t)s->n);
    if (!s->images || !s->labels) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    if (dnnc_idx_read_f32(images, s->images, s->n * IN, 1.0f / 255.0f) != 0 ||
        dnnc_idx_read_i32(labels, s->labels, s->n) != 0) {
        fprintf(stderr, "%s\n", dnnc_idx_last_error());
        return -1;
    }
    return 0;
}

/* The fraction of `s` the model classifies correctly, or -1 on failure. */
static double accuracy(mnist_mlp_t *m, const struct split *s) {
    static float logits[B * OUT];
    int64_t correct = 0;
    for (int64_t at = 0; at < s->n; at += B) {
        int64_t b = s->n - at < B ? s->n - at : B;
        if (mnist_mlp_forward(m, s->images + at * IN, b, logits) != 0) {
            fprintf(stderr, "forward: %s\n", mnist_mlp_last_error(m));
            return -1;
        }
        for (int64_t i = 0; i < b; i++) {
            int best = 0;
            for (int j = 1; j < OUT; j++)
                if (logits[i * OUT + j] > logits[i * OUT + best]) best = j;
            correct += best == s->labels[at + i];
        }
    }
    return (double)correct / (double)s->n;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../data/mnist";
    struct split train, test;
    if (load(dir, "train", &train) != 0 || load(dir, "test", &test) != 0) return 1;

    mnist_mlp_t *m = mnist_mlp_create();
    if (!m) {
        fprintf(stderr, "create: %s\n", mnist_mlp_last_error(NULL));
        return 1;
    }
    if (argc > 2 && strcmp(argv[2], "-") != 0 && mnist_mlp_load_weights(m, argv[2]) != 0) {
        fprintf(stderr, "load_weights: %s\n", mnist_mlp_last_error(m));
        return 1;
    }
    double before = accuracy(m, &test);
    if (before < 0) return 1;
    printf("test accuracy: %.4f\n", before);

    /* One epoch over the training digits in order, in batches of B (the last one
     * smaller: the library compiled a step for it too). */
    double total = 0;
    for (int64_t at = 0; at < train.n; at += B) {
        int64_t b = train.n - at < B ? train.n - at : B;
        float loss;
        if (mnist_mlp_train_step(m, train.images + at * IN, train.labels + at, b, &loss) != 0) {
            fprintf(stderr, "train_step: %s\n", mnist_mlp_last_error(m));
            return 1;
        }
        total += loss * (double)b;
    }
    double after = accuracy(m, &test);
    if (after < 0) return 1;
    printf("fine-tuned one epoch: train loss %.4f, test accuracy: %.4f\n",
           total / (double)train.n, after);
    if (argc > 3 && mnist_mlp_save_weights(m, argv[3]) != 0) {
        fprintf(stderr, "save_weights: %s\n", mnist_mlp_last_error(m));
        return 1;
    }
    mnist_mlp_destroy(m);
    free(train.images);
    free(train.labels);
    free(test.images);
    free(test.labels);
    return 0;
}
