/* check.h: what the C API tests share: reporting checks, files and .npy arrays.
 * Everything is `static inline` so that a test may use any part of it.
 */
#ifndef DNNC_CHECK_H
#define DNNC_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PATHLEN = 4096 };

#ifdef __GNUC__
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* ---- reporting ------------------------------------------------------------ */

static int n_checks, n_failed;

static inline void report(int ok, const char *fmt, ...) PRINTF_LIKE(2, 3);
static inline void report(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs(ok ? "ok: " : "FAIL: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    n_checks++;
    n_failed += !ok;
}

/* A setup step failed: the checks cannot go on. */
static inline void fatal(const char *fmt, ...) PRINTF_LIKE(1, 2);
static inline void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: setup: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    exit(2);
}

/* Appends to a fixed-size text (truncating if it is full). */
struct text {
    char s[2048];
    size_t n;
};

static inline void add(struct text *t, const char *fmt, ...) PRINTF_LIKE(2, 3);
static inline void add(struct text *t, const char *fmt, ...) {
    if (t->n >= sizeof t->s - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
    va_end(ap);
    if (k > 0) t->n += (size_t)k < sizeof t->s - t->n ? (size_t)k : sizeof t->s - 1 - t->n;
}

/* snprintf for messages, where cutting a long one short is fine. */
static inline void say(char *dst, size_t len, const char *fmt, ...) PRINTF_LIKE(3, 4);
static inline void say(char *dst, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, len, fmt, ap);
    va_end(ap);
}

/* Copies a library message (NULL allowed) into dst on one line. */
static inline void copy_msg(char *dst, size_t len, const char *src) {
    say(dst, len, "%s", src ? src : "(null)");
    for (char *p = dst; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

/* ": " before a non-empty detail. */
static inline const char *sep(const char *detail) {
    return detail[0] ? ": " : "";
}

/* Whether msg contains one of the '|'-separated words of `any`. */
static inline int contains_any(const char *msg, const char *any) {
    char word[64];
    while (*any) {
        size_t k = strcspn(any, "|");
        say(word, sizeof word, "%.*s", (int)k, any);
        if (k && strstr(msg, word)) return 1;
        any += k + (any[k] == '|');
    }
    return 0;
}

/* ---- memory and files ----------------------------------------------------- */

static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fatal("out of memory (%zu bytes)", n);
    return p;
}

static inline const char *join(char *buf, const char *dir, const char *name) {
    int k = snprintf(buf, PATHLEN, "%s/%s", dir, name);
    if (k < 0 || k >= PATHLEN) fatal("path too long: %s/%s", dir, name);
    return buf;
}

/* The whole file, or NULL (with *len 0). */
static inline unsigned char *read_file(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            unsigned char *bigger = realloc(buf, cap *= 2);
            if (!bigger) fatal("out of memory reading %s", path);
            buf = bigger;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static inline int write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* ---- .npy files ----------------------------------------------------------- */

/* Writes rows x cols floats as a version 1.0 .npy file (little-endian float32). */
static inline int write_npy(const char *path, const float *data, int64_t rows, int64_t cols) {
    char dict[128];
    int d = snprintf(dict, sizeof dict,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                     (long long)rows, (long long)cols);
    if (d < 0 || (size_t)d >= sizeof dict) return -1;
    size_t unpadded = 10 + (size_t)d + 1; /* magic, version, length, dict, '\n' */
    size_t hlen = (size_t)d + (64 - unpadded % 64) % 64 + 1;
    size_t n = (size_t)(rows * cols);
    size_t total = 10 + hlen + 4 * n;
    unsigned char *buf = xmalloc(total);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memset(buf + 10, ' ', hlen);
    memcpy(buf + 10, dict, (size_t)d);
    buf[10 + hlen - 1] = '\n';
    unsigned char *p = buf + 10 + hlen;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &data[i], 4);
        for (int b = 0; b < 4; b++) *p++ = (unsigned char)(bits >> (8 * b));
    }
    int rc = write_file(path, buf, total);
    free(buf);
    return rc;
}

/* Reads a float32 .npy file of shape (rows, cols), or returns NULL with a reason. */
static inline float *read_npy(const char *path, int64_t rows, int64_t cols, char *why, size_t whylen) {
    size_t len;
    unsigned char *buf = read_file(path, &len);
    float *out = NULL;
    if (!buf) {
        say(why, whylen, "cannot read %s", path);
        return NULL;
    }
    size_t hlen, start;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        say(why, whylen, "%s is not a .npy file", path);
        goto done;
    }
    if (buf[6] == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        start = 10;
    } else if ((buf[6] == 2 || buf[6] == 3) && len >= 12) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        start = 12;
    } else {
        say(why, whylen, "%s: unknown .npy version %d", path, buf[6]);
        goto done;
    }
    if (hlen > len - start) {
        say(why, whylen, "%s: the header is longer than the file", path);
        goto done;
    }
    char *header = xmalloc(hlen + 1);
    memcpy(header, buf + start, hlen);
    header[hlen] = '\0';
    long long r = -1, c = -1;
    const char *shape = strstr(header, "'shape'");
    const char *paren = shape ? strchr(shape, '(') : NULL;
    if (paren) {
        char *end;
        r = strtoll(paren + 1, &end, 10);
        while (*end == ' ' || *end == ',') end++;
        c = *end == ')' ? 1 : strtoll(end, &end, 10);
    }
    int f4 = strstr(header, "'<f4'") != NULL;
    int c_order = strstr(header, "'fortran_order': False") != NULL;
    free(header);
    if (!f4 || !c_order || r != rows || c != cols) {
        say(why, whylen, "%s is not a C-order float32 array of shape (%lld, %lld)", path,
                 (long long)rows, (long long)cols);
        goto done;
    }
    size_t n = (size_t)(rows * cols);
    if (len - start - hlen != 4 * n) {
        say(why, whylen, "%s holds %zu data bytes, not %zu", path, len - start - hlen, 4 * n);
        goto done;
    }
    out = xmalloc(4 * n);
    const unsigned char *p = buf + start + hlen;
    for (size_t i = 0; i < n; i++, p += 4) {
        uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                        (uint32_t)p[3] << 24;
        memcpy(&out[i], &bits, 4);
    }
done:
    free(buf);
    return out;
}

static inline double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

static inline int all_finite(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) return 0;
    return 1;
}

#endif /* DNNC_CHECK_H */
