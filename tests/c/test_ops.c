/* Proves: every kernel of the network (3D conv with bias / residual / ReLU,
 * max-pool, global average pool, fully connected, sigmoid) matches a plain
 * reference implementation written here, on random shapes including odd
 * sizes and channel counts that are not a multiple of the register tile, with
 * kernel 1/3/5, dilation 1-3, stride 1, 2 and (1,2,2), and padding 0..dil*(k/2),
 * plus the network's own conv geometries with fewer channels.
 * Tolerance: |y - ref| <= 1e-5 * (sum over the taps of |w*x| + |b| + |res|),
 * i.e. 1e-5 relative to the magnitude of the reduction (the reference sums in
 * double). Each op is also run on 1 and 3 threads: the results must be
 * bitwise identical. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "simd.h"
#include "test.h"
#include "threadpool.h"

static uint32_t rng = 12345u;
static uint32_t next(void) { rng = rng * 1664525u + 1013904223u; return rng >> 8; }
static int irand(int lo, int hi) { return lo + (int)(next() % (uint32_t)(hi - lo + 1)); }
static float frand(void) { return (float)next() / 16777216.0f * 2.0f - 1.0f; }

/* Buffers get the slack the kernels may read past an input. */
static float *alloc_rand(size_t n) {
    float *p = malloc(sizeof(float) * (n + CSAC__SLACK));
    for (size_t i = 0; i < n + CSAC__SLACK; i++) p[i] = frand();
    return p;
}

static void ref_conv(const csac__conv *cv, const float *w, const float *x, csac__shape is, const float *res, int relu,
                     float *y, double *mag) {
    csac__shape os = csac__conv_out_shape(cv, is);
    int k = cv->k;
    for (int co = 0; co < os.c; co++)
        for (int od = 0; od < os.d; od++)
            for (int oh = 0; oh < os.h; oh++)
                for (int ow = 0; ow < os.w; ow++) {
                    double s = cv->b ? cv->b[co] : 0, m = cv->b ? fabs(cv->b[co]) : 0;
                    for (int ci = 0; ci < cv->cin; ci++)
                        for (int kd = 0; kd < k; kd++)
                            for (int kh = 0; kh < k; kh++)
                                for (int kw = 0; kw < k; kw++) {
                                    int id = od * cv->stride[0] + kd * cv->dil - cv->pad;
                                    int ih = oh * cv->stride[1] + kh * cv->dil - cv->pad;
                                    int iw = ow * cv->stride[2] + kw * cv->dil - cv->pad;
                                    if (id < 0 || ih < 0 || iw < 0 || id >= is.d || ih >= is.h || iw >= is.w) continue;
                                    double t = (double)w[(((size_t)co * cv->cin + ci) * k + kd) * k * k + kh * k + kw] *
                                               x[(((size_t)ci * is.d + id) * is.h + ih) * is.w + iw];
                                    s += t;
                                    m += fabs(t);
                                }
                    size_t o = (((size_t)co * os.d + od) * os.h + oh) * os.w + ow;
                    if (res) { s += res[o]; m += fabs(res[o]); }
                    if (relu && s < 0) s = 0;
                    y[o] = (float)s;
                    mag[o] = m;
                }
}

static void test_conv(csac_pool *p1, csac_pool *p3, int trial) {
    csac__conv cv;
    memset(&cv, 0, sizeof cv);
    static const int ks[] = {1, 3, 3, 3, 5};
    cv.k = ks[irand(0, 4)];
    cv.dil = cv.k == 1 ? 1 : irand(1, 3);
    cv.pad = irand(0, cv.dil * (cv.k / 2));
    int sk = irand(0, 3); /* stride 1, 2, (1,2,2), (2,1,1) */
    cv.stride[0] = sk == 1 || sk == 3 ? 2 : 1;
    cv.stride[1] = cv.stride[2] = sk == 1 || sk == 2 ? 2 : 1;
    cv.cin = irand(1, 9);
    cv.cout = irand(1, 11);
    int span = cv.dil * (cv.k - 1) + 1;
    csac__shape is = {cv.cin, irand(1, 9), irand(1, 13), irand(1, 23)};
    /* the input must hold at least one kernel span (with padding) */
    if (is.d + 2 * cv.pad < span) is.d = span;
    if (is.h + 2 * cv.pad < span) is.h = span;
    if (is.w + 2 * cv.pad < span) is.w = span;
    if (trial == 0) { /* the stem's shape, scaled down: stride (1,2,2), odd width */
        cv.k = 3; cv.dil = 1; cv.pad = 1; cv.stride[0] = 1; cv.stride[1] = cv.stride[2] = 2;
        cv.cin = 1; cv.cout = 16; is = (csac__shape){1, 6, 17, 33};
    }
    /* The network's conv geometries, scaled down in channels: output rows 4..64
     * wide (whole vectors, vectors spanning rows, row ends), dilation 1-3 with
     * "same" padding (kernel rows skipped at the top and bottom), stride 2. */
    static const struct { int cin, cout, k, dil, s, d, h, w; } FIXED[] = {
        {1, 8, 3, 1, 0, 4, 16, 128}, {3, 8, 3, 1, 1, 5, 32, 32}, {2, 5, 3, 2, 1, 4, 32, 32},
        {2, 4, 3, 3, 1, 3, 32, 32},  {3, 9, 3, 1, 1, 6, 16, 16}, {4, 8, 3, 3, 1, 5, 16, 16},
        {5, 8, 3, 1, 1, 8, 8, 8},    {4, 7, 3, 2, 1, 8, 8, 8},   {6, 8, 3, 1, 2, 8, 8, 8},
        {8, 12, 3, 1, 1, 4, 4, 4},   {5, 6, 1, 1, 2, 8, 8, 8},   {3, 4, 3, 3, 1, 4, 4, 4},
        /* whole channel-vector blocks (32, 64 outputs): 4- and 8-wide rows, stride 2, dilation 2, a 12-wide row */
        {3, 32, 3, 1, 1, 4, 4, 4},   {2, 64, 3, 2, 1, 5, 8, 8},  {2, 32, 3, 1, 2, 8, 8, 8},
        {2, 32, 3, 1, 1, 3, 6, 12},
    };
    enum { NFIXED = sizeof FIXED / sizeof FIXED[0] };
    if (trial >= 1 && trial <= NFIXED) {
        int f = trial - 1, s = FIXED[f].s;
        cv.cin = FIXED[f].cin; cv.cout = FIXED[f].cout; cv.k = FIXED[f].k; cv.dil = FIXED[f].dil;
        cv.pad = cv.dil * (cv.k / 2);
        cv.stride[0] = s == 2 ? 2 : 1; /* s 0: (1,2,2) as in the stem */
        cv.stride[1] = cv.stride[2] = s == 1 ? 1 : 2;
        is = (csac__shape){cv.cin, FIXED[f].d, FIXED[f].h, FIXED[f].w};
    }
    csac__shape os = csac__conv_out_shape(&cv, is);
    int has_b = irand(0, 3) > 0, relu = irand(0, 1), has_res = irand(0, 1);
    size_t nx = (size_t)is.c * is.d * is.h * is.w, ny = (size_t)os.c * os.d * os.h * os.w;
    size_t nw = (size_t)cv.cout * cv.cin * cv.k * cv.k * cv.k;
    float *x = alloc_rand(nx), *w = alloc_rand(nw), *b = alloc_rand((size_t)cv.cout), *res = alloc_rand(ny);
    float *y1 = malloc(sizeof(float) * ny), *y3 = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny);
    float *yd = malloc(sizeof(float) * ny); /* the row kernel's output */
    double *mag = malloc(sizeof(double) * ny);
    const float *r = has_res ? res : NULL;
    cv.b = has_b ? b : NULL;
    ref_conv(&cv, w, x, is, r, relu, yr, mag);
    /* every algorithm that applies: direct, Winograd (k 3, stride 1), channel vectors */
    static const char *names[] = {"auto", "direct", "winograd", "chanvec"};
    for (int algo = CSAC__CONV_DIRECT; algo <= CSAC__CONV_CHANVEC; algo++) {
        cv.algo = algo;
        if (csac__conv_algo(&cv, is) != algo) continue; /* Winograd only for k 3, stride 1 */
        float *packed = malloc(sizeof(float) * csac__conv_packed_floats(&cv, is));
        csac__conv_pack(&cv, is, w, packed);
        cv.w = packed;
        size_t ng1 = csac__conv_gather_floats(&cv, is, 1), ng3 = csac__conv_gather_floats(&cv, is, 3);
        float *gather = malloc(sizeof(float) * (ng1 > ng3 ? ng1 : ng3));
        csac__conv3d(p1, &cv, x, is, y1, r, relu, gather);
        csac__conv3d(p3, &cv, x, is, y3, r, relu, gather);
        double worst = 0;
        size_t at = 0;
        for (size_t i = 0; i < ny; i++) {
            double e = fabs((double)y1[i] - yr[i]) / (mag[i] > 1e-30 ? mag[i] : 1e-30);
            if (!(e <= worst)) { worst = e; at = i; }
        }
        CHECK(worst <= 1e-5, "conv trial %d (%s): cin %d cout %d k %d dil %d pad %d stride (%d,%d,%d) in %dx%dx%d bias %d "
              "res %d relu %d: rel err %.3g at %zu (%.9g vs %.9g)", trial, names[algo], cv.cin, cv.cout, cv.k, cv.dil,
              cv.pad, cv.stride[0], cv.stride[1], cv.stride[2], is.d, is.h, is.w, has_b, has_res, relu, worst, at, y1[at],
              yr[at]);
        CHECK(memcmp(y1, y3, sizeof(float) * ny) == 0, "conv trial %d (%s): 1 vs 3 threads differ", trial, names[algo]);
        if (algo == CSAC__CONV_DIRECT) memcpy(yd, y1, sizeof(float) * ny);
        if (algo == CSAC__CONV_CHANVEC) { /* same taps in the same order as the row kernel: the same values */
            size_t nd = 0;
            for (size_t i = 0; i < ny; i++) nd += !(y1[i] == yd[i]);
            CHECK(nd == 0, "conv trial %d: channel-vector and row kernels differ at %zu of %zu outputs", trial, nd, ny);
        }
        free(packed);
        free(gather);
    }
    free(x); free(w); free(b); free(res);
    free(y1); free(y3); free(yr); free(yd); free(mag);
}

static void test_maxpool(csac_pool *p1, csac_pool *p3, int trial) {
    int k = irand(2, 4);
    csac__shape is = {irand(1, 5), irand(k, 11), irand(k, 13), irand(k, 17)};
    if (trial == 0) is = (csac__shape){2, 2, 3, 2101}; /* rows wider than the kernel's row buffer */
    if (trial == 1) k = 2, is = (csac__shape){3, 5, 7, 75}; /* k 2, rows of whole AVX-512 vectors and a tail */
    csac__shape os = csac__maxpool_out_shape(k, is);
    size_t nx = (size_t)is.c * is.d * is.h * is.w, ny = (size_t)os.c * os.d * os.h * os.w;
    float *x = alloc_rand(nx), *y1 = malloc(sizeof(float) * ny), *y3 = malloc(sizeof(float) * ny);
    csac__maxpool3d(p1, k, x, is, y1);
    csac__maxpool3d(p3, k, x, is, y3);
    int bad = 0;
    for (int c = 0; c < os.c; c++)
        for (int d = 0; d < os.d; d++)
            for (int h = 0; h < os.h; h++)
                for (int w = 0; w < os.w; w++) {
                    float m = -FLT_MAX;
                    for (int a = 0; a < k; a++)
                        for (int bb = 0; bb < k; bb++)
                            for (int e = 0; e < k; e++) {
                                float v = x[(((size_t)c * is.d + d * k + a) * is.h + h * k + bb) * is.w + w * k + e];
                                if (v > m) m = v;
                            }
                    bad += y1[(((size_t)c * os.d + d) * os.h + h) * os.w + w] != m;
                }
    CHECK(bad == 0, "maxpool trial %d k %d in %dx%dx%d: %d wrong", trial, k, is.d, is.h, is.w, bad);
    CHECK(memcmp(y1, y3, sizeof(float) * ny) == 0, "maxpool 1 vs 3 threads");
    free(x); free(y1); free(y3);
}

static void test_small_ops(void) {
    csac__shape s = {7, 3, 5, 4};
    float *x = alloc_rand(7 * 60), out[7];
    csac__avgpool_global(x, s, out);
    for (int c = 0; c < 7; c++) {
        double m = 0;
        for (int i = 0; i < 60; i++) m += x[c * 60 + i];
        CHECK_NEAR(out[c], m / 60, 1e-6, "global average pool");
    }
    int nin = 37, nout = 13;
    float *w = alloc_rand((size_t)nin * nout), *b = alloc_rand((size_t)nout), y[13];
    for (int relu = 0; relu < 2; relu++) {
        csac__linear(w, b, nin, nout, x, y, relu);
        for (int o = 0; o < nout; o++) {
            double s2 = b[o], m = fabs(b[o]);
            for (int i = 0; i < nin; i++) { s2 += (double)w[o * nin + i] * x[i]; m += fabs((double)w[o * nin + i] * x[i]); }
            if (relu && s2 < 0) s2 = 0;
            CHECK(fabs(y[o] - s2) <= 1e-5 * m, "linear relu %d out %d: %.9g vs %.9g", relu, o, y[o], s2);
        }
    }
    static const float xs[] = {-100.0f, -20.0f, -1.5f, 0.0f, 0.3f, 7.0f, 100.0f};
    for (int i = 0; i < 7; i++) {
        double ref = 1.0 / (1.0 + exp(-(double)xs[i]));
        CHECK(fabs(csac__sigmoid(xs[i]) - ref) <= 1e-6 * ref + 1e-30, "sigmoid(%g) = %.9g vs %.9g", xs[i],
              csac__sigmoid(xs[i]), ref);
    }
    free(x); free(w); free(b);
}

int main(void) {
    csac_pool *p1 = csac_pool_new(1), *p3 = csac_pool_new(3);
    CHECK(p1 && p3, "pools");
    if (!p1 || !p3) return test_summary("test_ops");
    for (int t = 0; t < 300; t++) test_conv(p1, p3, t);
    for (int t = 0; t < 50; t++) test_maxpool(p1, p3, t);
    test_small_ops();
    /* where the kernels were measured faster: Winograd for every stride-1 3x3
     * conv of the network without FMA (wasm), with FMA at dilation 1 on planes
     * from 8 x 8; channel vectors for the dilated 8^3 and the 4^3 convs with
     * 16 lanes and FMA (AVX-512), never elsewhere */
    struct { int cin, dil, size, fma, nofma, fma16; } PICK[] = {
        {16, 1, 32, CSAC__CONV_WINOGRAD, CSAC__CONV_WINOGRAD, CSAC__CONV_WINOGRAD},
        {32, 1, 16, CSAC__CONV_WINOGRAD, CSAC__CONV_WINOGRAD, CSAC__CONV_WINOGRAD},
        {64, 1, 8, CSAC__CONV_WINOGRAD, CSAC__CONV_WINOGRAD, CSAC__CONV_WINOGRAD},
        {64, 2, 8, CSAC__CONV_DIRECT, CSAC__CONV_WINOGRAD, CSAC__CONV_CHANVEC},
        {128, 1, 4, CSAC__CONV_DIRECT, CSAC__CONV_WINOGRAD, CSAC__CONV_CHANVEC},
        {16, 3, 32, CSAC__CONV_DIRECT, CSAC__CONV_WINOGRAD, CSAC__CONV_DIRECT},
    };
    for (size_t i = 0; i < sizeof PICK / sizeof PICK[0]; i++) {
        csac__conv c = {PICK[i].cin, PICK[i].cin, 3, PICK[i].dil, PICK[i].dil, {1, 1, 1}, NULL, NULL, CSAC__CONV_AUTO};
        int want = !CSAC_SIMD_FMA ? PICK[i].nofma : CSAC_VLEN >= 16 ? PICK[i].fma16 : PICK[i].fma;
        int got = csac__conv_algo(&c, (csac__shape){PICK[i].cin, PICK[i].size, PICK[i].size, PICK[i].size});
        CHECK(got == want, "%d^3 conv, dilation %d, %d lanes, FMA %d: algorithm %d, expected %d", PICK[i].size, PICK[i].dil,
              CSAC_VLEN, CSAC_SIMD_FMA, got, want);
    }
    csac_pool_free(p1);
    csac_pool_free(p3);
    return test_summary("test_ops");
}
