/* fuzz_common.h - shared by the fuzz targets in fuzz/ (libFuzzer, and the
 * corpus replay of fuzz/replay_main.c): a context with small size limits, the
 * input modes that put structured NIfTI bytes through gzip, and the checks a
 * successful read must pass. A broken check aborts, so libFuzzer and the
 * replay test report it like a crash. */
#ifndef CSAC_FUZZ_COMMON_H
#define CSAC_FUZZ_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/c/nifti_make.h" /* mk_gzip_ex: the tests' gzip writer */
#include "csac.h"
#include "zlib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz check failed: %s: ", #cond);                 \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* One context per input, serial (n_threads 1: one core per fuzzer, and the
 * results do not depend on threads). The limits are small so that every
 * allocation the reader legitimately makes stays far below libFuzzer's
 * -rss_limit_mb / -malloc_limit_mb (2 GiB): with the default limits (1 GiB of
 * voxels) a 400-byte header could ask for a legal 1 GiB buffer, which
 * libFuzzer would report as an out-of-memory "crash" that is not a bug. */
static inline csac_ctx *fuzz_ctx(uint64_t file_bytes, uint64_t raw_bytes, uint64_t voxels, int64_t dim,
                                 csac_params *p) {
    *p = csac_default_params();
    p->n_threads = 1;
    p->max_file_bytes = file_bytes;
    p->max_decompressed_bytes = raw_bytes;
    p->max_voxels = voxels;
    p->max_dim = dim;
    csac_ctx *ctx = NULL;
    FUZZ_CHECK(csac_init(p, &ctx) == CSAC_OK && ctx, "csac_init failed");
    return ctx;
}

/* gzip of in[0, n) at level (0..9); malloc'd, NULL on failure. */
static inline uint8_t *fuzz_gzip(const uint8_t *in, size_t n, int level, size_t *out_n) {
    return mk_gzip_ex(in, n, level, Z_DEFAULT_STRATEGY, 0, out_n);
}

/* Input byte 0 picks how the rest reaches the reader (mutating compressed
 * bytes rarely gives a valid stream, so the harness compresses the NIfTI
 * bytes itself; mode 0 still feeds raw bytes, gzip or not):
 *   m = b0 & 3, a = b0 >> 2 (0..63)
 *   0: the bytes as they are
 *   1: one gzip member, level a % 10 (libdeflate fast path for 1-2 byte voxels)
 *   2: two gzip members split at byte 348 + 16a (cat a.gz b.gz)
 *   3: one gzip member with its last a + 1 bytes cut off (truncated stream)
 * Returns a malloc'd buffer (the caller frees it or hands it over). */
static inline uint8_t *fuzz_prepare(const uint8_t *data, size_t size, size_t *n) {
    *n = 0;
    if (size == 0) return malloc(1);
    int m = data[0] & 3, a = data[0] >> 2;
    const uint8_t *d = data + 1;
    size_t k = size - 1;
    uint8_t *out = NULL;
    if (m == 0) {
        out = malloc(k ? k : 1);
        if (out && k) memcpy(out, d, k);
        *n = k;
    } else if (m == 1 || m == 3) {
        out = fuzz_gzip(d, k, m == 1 ? a % 10 : 1, n);
        if (out && m == 3) *n = *n > (size_t)a + 1 ? *n - ((size_t)a + 1) : 0;
    } else {
        size_t cut = 348 + 16 * (size_t)a;
        if (cut > k) cut = k / 2;
        size_t n1 = 0, n2 = 0;
        uint8_t *g1 = fuzz_gzip(d, cut, 1, &n1), *g2 = fuzz_gzip(d + cut, k - cut, 6, &n2);
        if (g1 && g2) out = malloc(n1 + n2);
        if (out) {
            memcpy(out, g1, n1);
            memcpy(out + n1, g2, n2);
            *n = n1 + n2;
        }
        free(g1);
        free(g2);
    }
    FUZZ_CHECK(out != NULL, "harness out of memory (%zu bytes)", size);
    return out;
}

/* What every read must guarantee: a failure has a status, a message and no
 * volume; a success has a volume within the limits whose summary (geometry,
 * HU range, warnings) is consistent with its voxels. */
static inline void fuzz_check_read(csac_ctx *ctx, const csac_params *p, int st, const csac_volume *vol) {
    if (st != CSAC_OK) {
        FUZZ_CHECK(st > 0 && st < CSAC_E_COUNT, "status %d", st);
        FUZZ_CHECK(st != CSAC_E_ARG && st != CSAC_E_NOMEM, "%s: %s", csac_status_name(st), csac_last_error(ctx));
        FUZZ_CHECK(vol == NULL, "a failed read returned a volume");
        FUZZ_CHECK(csac_last_error(ctx)[0] != '\0', "%s without a message", csac_status_name(st));
        return;
    }
    FUZZ_CHECK(vol != NULL, "success without a volume");
    FUZZ_CHECK(csac_last_error(ctx)[0] == '\0', "success left a message: %s", csac_last_error(ctx));
    csac_volume_info in;
    FUZZ_CHECK(csac_volume_get_info(vol, &in) == CSAC_OK, "get_info");
    FUZZ_CHECK(in.nifti_version == 1 || in.nifti_version == 2, "nifti_version %d", in.nifti_version);
    uint64_t nvox = 1;
    for (int a = 0; a < 3; a++) {
        FUZZ_CHECK(in.dim[a] >= 2 && in.dim[a] <= p->max_dim, "dim[%d] = %lld", a, (long long)in.dim[a]);
        FUZZ_CHECK(in.spacing[a] >= 1e-3 && in.spacing[a] <= 100, "spacing[%d] = %g", a, in.spacing[a]);
        nvox *= (uint64_t)in.dim[a];
    }
    FUZZ_CHECK(nvox <= p->max_voxels, "%llu voxels", (unsigned long long)nvox);
    FUZZ_CHECK(in.n_volumes >= 1, "n_volumes %lld", (long long)in.n_volumes);
    FUZZ_CHECK(in.datatype_name && in.affine_source, "NULL names");
    FUZZ_CHECK(!strcmp(in.affine_source, "sform") || !strcmp(in.affine_source, "qform") ||
                   !strcmp(in.affine_source, "pixdim"), "affine_source %s", in.affine_source);
    for (int a = 0; a < 3; a++)
        FUZZ_CHECK(in.orientation[a] && strchr("RLAPSI?", in.orientation[a]), "orientation %.4s", in.orientation);
    FUZZ_CHECK(in.orientation[3] == '\0', "orientation not terminated");
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) FUZZ_CHECK(isfinite(in.vox2world[r][c]), "vox2world[%d][%d]", r, c);
    FUZZ_CHECK(isfinite(in.hu_min) && isfinite(in.hu_max) && in.hu_min <= in.hu_max, "HU range %g..%g",
               in.hu_min, in.hu_max);
    /* the summary was computed apart from the voxels (raw extremes, then
     * scaled): allow for float rounding (FMA contraction) only */
    double tol = 1e-5 * (fabs(in.hu_min) + fabs(in.hu_max)) + 1e-3;
    const float *v = csac_volume_data(vol);
    FUZZ_CHECK(v != NULL, "no voxels");
    float mn = v[0], mx = v[0];
    for (uint64_t t = 0; t < nvox; t++) {
        FUZZ_CHECK(isfinite(v[t]), "voxel %llu is %g", (unsigned long long)t, v[t]);
        mn = v[t] < mn ? v[t] : mn;
        mx = v[t] > mx ? v[t] : mx;
    }
    FUZZ_CHECK(fabs((double)mn - in.hu_min) <= tol && fabs((double)mx - in.hu_max) <= tol,
               "voxels span %g..%g, info says %g..%g", mn, mx, in.hu_min, in.hu_max);
    if (isfinite(in.hu_mean))
        FUZZ_CHECK(in.hu_mean >= in.hu_min - tol && in.hu_mean <= in.hu_max + tol, "mean %g outside %g..%g",
                   in.hu_mean, in.hu_min, in.hu_max);
    int nw = csac_volume_n_warnings(vol);
    FUZZ_CHECK(nw >= 0 && nw <= 8, "%d warnings", nw);
    for (int i = 0; i < nw; i++) {
        const char *w = csac_volume_warning(vol, i);
        FUZZ_CHECK(w && w[0] && strlen(w) < 256, "warning %d", i);
    }
    FUZZ_CHECK(csac_volume_warning(vol, nw) == NULL, "warning past the end");
}

#endif
