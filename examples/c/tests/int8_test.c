/* int8_test: a library compiled from int8-quantized weights (`dnnc quantize`) is for
 * inference (its header has no train_step): it classifies the MNIST test digits with
 * the accuracy `dnnc eval` gives for the same weights.
 *
 *   usage: int8_test DATA_DIR EXPECTED_ACCURACY
 */
#include "check.h"
#include "mnist_mlp.h"

enum { IN = MNIST_MLP_INPUT_SIZE, OUT = MNIST_MLP_OUTPUT_SIZE, B = MNIST_MLP_MAX_BATCH };

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: int8_test DATA_DIR EXPECTED_ACCURACY\n");
        return 2;
    }
    char images[PATHLEN], labels[PATHLEN];
    snprintf(images, sizeof images, "%s/test-images-idx3-ubyte.gz", argv[1]);
    snprintf(labels, sizeof labels, "%s/test-labels-idx1-ubyte.gz", argv[1]);
    int64_t dims[4];
    if (dnnc_idx_dims(images, dims, 4) != 3) {
        fprintf(stderr, "%s: %s\n", images, dnnc_idx_last_error());
        return 1;
    }
    int64_t n = dims[0];
    float *x = malloc((size_t)(n * IN) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    if (!x || !y || dnnc_idx_read_f32(images, x, n * IN, 1.0f / 255.0f) != 0 ||
        dnnc_idx_read_i32(labels, y, n) != 0) {
        fprintf(stderr, "reading the test digits: %s\n", dnnc_idx_last_error());
        return 1;
    }
    mnist_mlp_t *m = mnist_mlp_create();
    report(m != NULL, "create");
    if (!m) return 1;
    static float logits[B * OUT];
    int64_t correct = 0;
    for (int64_t at = 0; at < n; at += B) {
        int64_t b = n - at < B ? n - at : B;
        if (mnist_mlp_forward(m, x + at * IN, b, logits) != 0) {
            fprintf(stderr, "forward: %s\n", mnist_mlp_last_error(m));
            return 1;
        }
        for (int64_t i = 0; i < b; i++) {
            int best = 0;
            for (int j = 1; j < OUT; j++)
                if (logits[i * OUT + j] > logits[i * OUT + best]) best = j;
            correct += best == y[at + i];
        }
    }
    double acc = (double)correct / (double)n, want = atof(argv[2]);
    report(fabs(acc - want) < 5e-5, "int8 library accuracy %.4f, dnnc eval %.4f", acc, want);
    mnist_mlp_destroy(m);
    free(x);
    free(y);
    printf("%d checks, %d failed\n", n_checks, n_failed);
    return n_failed != 0;
}
