/* bench.c - `csac bench`: times whole forwards of CSAC-Net-3D v1 on the
 * 64x128x128 grid (random weights and input unless --weights is given).
 * Prints every run, the median, and GFLOP/s from the dense FLOP count
 * (every conv tap, as PyTorch/ONNX profilers count; the count of taps inside
 * the input is printed too). A benchmark, not a test: nothing is asserted. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "csac bench: %s %s\n", msg, arg ? arg : "");
    fprintf(stderr, "usage: csac bench [--threads N] [--runs R] [--warmup W] [--weights F] [--seed S]\n");
    return 2;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int csac_cli_bench(int argc, char **argv) {
    int threads = 2, runs = 10, warmup = 2;
    unsigned long seed = 1;
    const char *weights = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage_error("missing value or unknown option", a);
        const char *v = argv[++i];
        char *end;
        long x = strtol(v, &end, 10);
        if (!strcmp(a, "--weights")) weights = v;
        else if (*end || x < 0) return usage_error("bad value for", a);
        else if (!strcmp(a, "--threads") && x >= 1 && x <= 256) threads = (int)x;
        else if (!strcmp(a, "--runs") && x >= 1 && x <= 100000) runs = (int)x;
        else if (!strcmp(a, "--warmup") && x <= 1000) warmup = (int)x;
        else if (!strcmp(a, "--seed")) seed = (unsigned long)x;
        else return usage_error("unknown option or value out of range:", a);
    }
    csac_params p = csac_default_params();
    p.n_threads = threads;
    csac_ctx *ctx = NULL;
    if (csac_init(&p, &ctx) != CSAC_OK) {
        fprintf(stderr, "csac bench: %s\n", ctx ? csac_last_error(ctx) : "out of memory");
        csac_free(ctx);
        return 1;
    }
    int st = weights ? csac_load_model_file(ctx, weights) : csac_model_init_random(ctx, (uint32_t)seed);
    if (st != CSAC_OK) {
        fprintf(stderr, "csac bench: %s\n", csac_last_error(ctx));
        csac_free(ctx);
        return 1;
    }
    if (weights) { /* any input in [0,1) will do for timing */
        float *in = csac_model_input(ctx);
        uint32_t s = (uint32_t)seed;
        for (long i = 0; i < (long)CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W; i++) {
            s = s * 1664525u + 1013904223u;
            in[i] = (float)(s >> 8) / 16777216.0f;
        }
    }
    double gflop = csac_model_flops(1) * 1e-9, gflop_in = csac_model_flops(0) * 1e-9;
    printf("%s, %d thread%s, %s\n", csac_build_info(), csac_n_threads(ctx), csac_n_threads(ctx) > 1 ? "s" : "",
           csac_model_info(ctx));
    printf("input 1x%dx%dx%d, %.2f GFLOP dense (%.2f counting only taps inside the input)\n", CSAC_GRID_D,
           CSAC_GRID_H, CSAC_GRID_W, gflop, gflop_in);
    double *ms = malloc(sizeof(double) * (size_t)runs);
    if (!ms) { csac_free(ctx); return 1; }
    csac_result r;
    for (int i = 0; i < warmup + runs; i++) {
        if (csac_forward(ctx, &r) != CSAC_OK) {
            fprintf(stderr, "csac bench: %s\n", csac_last_error(ctx));
            free(ms);
            csac_free(ctx);
            return 1;
        }
        if (i >= warmup) {
            ms[i - warmup] = r.ms_forward;
            printf("run %d: %.1f ms\n", i - warmup + 1, r.ms_forward);
        }
    }
    qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
    double med = runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
    printf("median %.1f ms (min %.1f, max %.1f), %.1f GFLOP/s dense; probability %.6f logit %.6f\n", med, ms[0],
           ms[runs - 1], gflop / (med * 1e-3), r.probability, r.logit);
    free(ms);
    csac_free(ctx);
    return 0;
}
