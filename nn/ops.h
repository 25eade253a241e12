/*
 * ops.h - the CSAC-Net-3D kernels (internal). Tensors are NCDHW floats with
 * N = 1, w fastest. Each kernel splits its outputs over the pool's threads
 * with a fixed partition and never splits a reduction, so results are bitwise
 * identical for any thread count.
 */
#ifndef CSAC_OPS_H
#define CSAC_OPS_H

#include <stddef.h>

#include "threadpool.h"

typedef struct csac__shape { int c, d, h, w; } csac__shape;

/* Floats a kernel may read past the end of a buffer (the conv reads this far
 * past its own gather buffer, whose tail it zeroes). */
#define CSAC__SLACK 64
#define CSAC__MAX_K 7 /* largest conv kernel the kernels take */
#define CSAC__MAX_THREADS 256 /* pool sizes the kernels take (csac_init's limit) */

/* How a conv is computed: direct (vectors along output rows), Winograd
 * F(2x2, 3x3) over (h, w) for k = 3, stride 1 (any dilation), or direct with
 * vectors across output channels (CHANVEC: small planes). AUTO picks from the
 * shapes and the target; tests force one (WINOGRAD falls back to direct
 * where it does not apply). */
enum { CSAC__CONV_AUTO = 0, CSAC__CONV_DIRECT, CSAC__CONV_WINOGRAD, CSAC__CONV_CHANVEC };

/* 3D convolution, cubic kernel k, the same padding and dilation on all axes,
 * stride per axis (d, h, w). Weights are packed by csac__conv_pack for the
 * input shape the conv runs on (the layout depends on the algorithm). */
typedef struct csac__conv {
    int cin, cout, k, dil, pad;
    int stride[3];
    const float *w; /* packed */
    const float *b; /* [cout], or NULL for no bias */
    int algo;       /* CSAC__CONV_*; 0 = AUTO */
} csac__conv;

csac__shape csac__conv_out_shape(const csac__conv *cv, csac__shape in);
/* The algorithm cv runs with on this input shape (never AUTO). */
int csac__conv_algo(const csac__conv *cv, csac__shape in);
size_t csac__conv_packed_floats(const csac__conv *cv, csac__shape in);
/* w: PyTorch order [cout][cin][k][k][k] -> packed for cv on input shape in. */
void csac__conv_pack(const csac__conv *cv, csac__shape in, const float *w, float *packed);
/* Working memory for one call with nth threads: the gather buffer (floats),
 * one region per thread. */
size_t csac__conv_gather_floats(const csac__conv *cv, csac__shape in, int nth);

/* out = [relu](conv(in) + b [+ res]); res has out's shape (or is NULL);
 * gather holds csac__conv_gather_floats for the pool's thread count. */
void csac__conv3d(csac_pool *pool, const csac__conv *cv, const float *in, csac__shape ish, float *out,
                  const float *res, int relu, float *gather);

/* Max-pool with kernel = stride = k on every axis (floor of odd sizes). */
csac__shape csac__maxpool_out_shape(int k, csac__shape in);
void csac__maxpool3d(csac_pool *pool, int k, const float *in, csac__shape ish, float *out);

/* out[c] = mean of channel c. */
void csac__avgpool_global(const float *in, csac__shape ish, float *out);

/* y = [relu](W x + b), W [nout][nin] row-major (PyTorch Linear). */
void csac__linear(const float *w, const float *b, int nin, int nout, const float *x, float *y, int relu);

float csac__sigmoid(float x);

/* Number of multiply-adds of a conv counting every tap (dense) or only taps
 * inside the input (the work the kernels skip at the borders is not all skipped). */
double csac__conv_macs(const csac__conv *cv, csac__shape in, int dense);

#endif
