/* csac.c - context, errors, build info, self-test, and the screen pipeline. */
#include "csac_internal.h"
#include "simd.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const status_names[CSAC_E_COUNT] = {
    "CSAC_OK",        "CSAC_E_ARG",         "CSAC_E_NOMEM", "CSAC_E_IO",
    "CSAC_E_FORMAT",  "CSAC_E_TRUNCATED",   "CSAC_E_UNSUPPORTED",
    "CSAC_E_LIMIT",   "CSAC_E_DATA",        "CSAC_E_WEIGHTS", "CSAC_E_STATE",
    "CSAC_E_THREADS",
};

const char *csac_status_name(int status) {
    return status >= 0 && status < CSAC_E_COUNT ? status_names[status] : "CSAC_E_UNKNOWN";
}

int csac__fail(csac_ctx *ctx, int status, const char *fmt, ...) {
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
        va_end(ap);
    }
    return status;
}

void csac__clear_error(csac_ctx *ctx) {
    if (ctx) ctx->err[0] = '\0';
}

double csac__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

csac_params csac_default_params(void) {
    csac_params p;
    memset(&p, 0, sizeof p);
    p.n_threads = 1;
    p.max_file_bytes = 1ull << 30;          /* 1 GiB on disk                       */
    p.max_decompressed_bytes = 1ull << 30;  /* 1 GiB raw: a 1024x1024x512 int16 is 1 GiB */
    p.max_voxels = 1ull << 28;              /* 268 M voxels (1 GiB as float32)     */
    p.max_dim = 4096;
    return p;
}

int csac_init(const csac_params *p, csac_ctx **out) {
    if (!out) return CSAC_E_ARG;
    *out = NULL;
    csac_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return CSAC_E_NOMEM;
    *out = ctx;
    ctx->params = p ? *p : csac_default_params();
    if (ctx->params.n_threads < 1 || ctx->params.n_threads > 256)
        return csac__fail(ctx, CSAC_E_ARG, "n_threads must be 1..256, got %d", ctx->params.n_threads);
    if (ctx->params.max_dim < 1 || ctx->params.max_voxels < 1 || ctx->params.max_file_bytes < 1 ||
        ctx->params.max_decompressed_bytes < 1)
        return csac__fail(ctx, CSAC_E_ARG, "size limits must be positive");
    ctx->pool = csac_pool_new(ctx->params.n_threads);
    if (!ctx->pool)
        return csac__fail(ctx, CSAC_E_THREADS, "could not start %d threads", ctx->params.n_threads);
    ctx->params.n_threads = csac_pool_size(ctx->pool);
    return CSAC_OK;
}

void csac_free(csac_ctx *ctx) {
    if (!ctx) return;
    csac__model_free(ctx->model);
    csac_pool_free(ctx->pool);
    free(ctx);
}

const char *csac_last_error(const csac_ctx *ctx) { return ctx ? ctx->err : "no context"; }

int csac_n_threads(const csac_ctx *ctx) { return ctx ? csac_pool_size(ctx->pool) : 0; }

#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
#define CSAC_THREADS_NAME "none"
#else
#define CSAC_THREADS_NAME "pthread"
#endif

const char *csac_build_info(void) {
    return "csac " CSAC_VERSION " simd=" CSAC_SIMD_NAME " threads=" CSAC_THREADS_NAME;
}

/* ---- self-test: a blocked SIMD dot product per row, rows split over threads ---- */
enum { ST_ROWS = 64, ST_COLS = 1021 }; /* odd length exercises the scalar tail */

typedef struct {
    const float *a, *b;
    float *out;
    int thread_rows[256]; /* rows done by each thread */
} selftest_job;

static float dot_simd(const float *a, const float *b, int n) {
    csac_vf acc0 = csac_vzero(), acc1 = csac_vzero();
    int i = 0;
    for (; i + 2 * CSAC_VLEN <= n; i += 2 * CSAC_VLEN) {
        acc0 = csac_vmadd(acc0, csac_vload(a + i), csac_vload(b + i));
        acc1 = csac_vmadd(acc1, csac_vload(a + i + CSAC_VLEN), csac_vload(b + i + CSAC_VLEN));
    }
    float s = csac_vhsum(csac_vadd(acc0, acc1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void selftest_task(void *arg, int ith, int nth) {
    selftest_job *job = arg;
    long lo, hi;
    csac_split(ST_ROWS, ith, nth, &lo, &hi);
    for (long r = lo; r < hi; r++) {
        job->out[r] = dot_simd(job->a + r * ST_COLS, job->b, ST_COLS);
        job->thread_rows[ith]++;
    }
}

int csac_selftest(csac_ctx *ctx, csac_selftest_report *rep) {
    if (!ctx || !rep) return csac__fail(ctx, CSAC_E_ARG, "csac_selftest: NULL argument");
    memset(rep, 0, sizeof *rep);
    float *a = malloc(sizeof(float) * ST_ROWS * ST_COLS), *b = malloc(sizeof(float) * ST_COLS);
    float *out = malloc(sizeof(float) * ST_ROWS);
    selftest_job *job = calloc(1, sizeof *job);
    if (!a || !b || !out || !job) {
        free(a); free(b); free(out); free(job);
        return csac__fail(ctx, CSAC_E_NOMEM, "csac_selftest: out of memory");
    }
    uint32_t s = 12345u; /* fixed LCG: the same data everywhere */
    for (int i = 0; i < ST_ROWS * ST_COLS; i++) { s = s * 1664525u + 1013904223u; a[i] = (float)(s >> 8) / 16777216.0f - 0.5f; }
    for (int i = 0; i < ST_COLS; i++) { s = s * 1664525u + 1013904223u; b[i] = (float)(s >> 8) / 16777216.0f - 0.5f; }
    job->a = a; job->b = b; job->out = out;
    csac_pool_run(ctx->pool, selftest_task, job);
    double max_err = 0;
    for (int r = 0; r < ST_ROWS; r++) {
        double ref = 0;
        for (int i = 0; i < ST_COLS; i++) ref += (double)a[r * ST_COLS + i] * b[i];
        double e = fabs(ref - out[r]);
        if (!(e <= max_err)) max_err = e; /* NaN counts as the worst */
    }
    int n = csac_pool_size(ctx->pool), used = 0;
    for (int t = 0; t < n && t < 256; t++) used += job->thread_rows[t] > 0;
    rep->threads_used = used;
    rep->simd_lanes = CSAC_VLEN;
    rep->max_abs_err = max_err;
    free(a); free(b); free(out); free(job);
    if (!(max_err < 1e-3))
        return csac__fail(ctx, CSAC_E_DATA, "self-test: SIMD result differs from scalar by %g", max_err);
    return CSAC_OK;
}

int csac_screen(csac_ctx *ctx, const csac_volume *vol, csac_result *res) {
    if (!ctx || !vol || !res) return csac__fail(ctx, CSAC_E_ARG, "csac_screen: NULL argument");
    float *in = csac_model_input(ctx);
    if (!in) return csac__fail(ctx, CSAC_E_STATE, "no model loaded: load weights before screening");
    csac_grid grid;
    double t0 = csac__now_ms();
    int st = csac_preprocess(ctx, vol, in, &grid);
    if (st != CSAC_OK) return st;
    double t1 = csac__now_ms();
    st = csac_forward(ctx, res);
    if (st != CSAC_OK) return st;
    res->ms_preprocess = t1 - t0;
    res->grid = grid;
    return CSAC_OK;
}
