/* ops.c - CSAC-Net-3D kernels: 3D conv, max-pool, global average pool, FC.
 *
 * The conv is a direct, spatially vectorised convolution. Each call first
 * "gathers" the input into a zero-padded copy split into stride phases
 * (h % sh, w % sw), so every tap of a strided or dilated conv becomes a
 * constant offset into a contiguous plane. Outputs of one depth slice are then
 * computed on the padded plane's flattened (oh * Wq + ow) index in register
 * tiles of CO output channels x NV vectors, and the columns that fall in the
 * padding are dropped when the tile is written out with bias, residual and
 * ReLU. Depth taps outside the input are skipped (they would multiply zeros).
 */
#include "ops.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "simd.h"

/* Register tile: CO output channels x NV vectors of CSAC_VLEN outputs.
 * 4 x 3 fills 12 of AVX2's 16 registers; wasm SIMD has no FMA, and the
 * product needs a temporary, so 4 x 2 keeps V8 from spilling on x86. */
#ifndef CSAC_CONV_CO /* overridable for tuning experiments */
#define CSAC_CONV_CO 4
#endif
#ifndef CSAC_CONV_NV
#if defined(__wasm_simd128__)
#define CSAC_CONV_NV 2
#else
#define CSAC_CONV_NV 3
#endif
#endif
#define CO CSAC_CONV_CO
#define NV CSAC_CONV_NV
#define TILE (NV * CSAC_VLEN)

_Static_assert(TILE <= CSAC__SLACK, "gather slack must cover one tile");

csac__shape csac__conv_out_shape(const csac__conv *cv, csac__shape in) {
    csac__shape o;
    int span = cv->dil * (cv->k - 1) + 1;
    o.c = cv->cout;
    o.d = (in.d + 2 * cv->pad - span) / cv->stride[0] + 1;
    o.h = (in.h + 2 * cv->pad - span) / cv->stride[1] + 1;
    o.w = (in.w + 2 * cv->pad - span) / cv->stride[2] + 1;
    return o;
}

size_t csac__conv_packed_floats(int cin, int cout, int k) {
    return (size_t)((cout + CO - 1) / CO) * cin * k * k * k * CO;
}

void csac__conv_pack(const float *w, int cin, int cout, int k, float *packed) {
    int kvol = k * k * k, ncot = (cout + CO - 1) / CO;
    for (int t = 0; t < ncot; t++)
        for (int ci = 0; ci < cin; ci++)
            for (int q = 0; q < kvol; q++)
                for (int c = 0; c < CO; c++) {
                    int co = t * CO + c;
                    packed[(((size_t)t * cin + ci) * kvol + q) * CO + c] =
                        co < cout ? w[((size_t)co * cin + ci) * kvol + q] : 0.0f;
                }
}

/* Geometry of the gathered (padded, phase-split) input and the output plane. */
typedef struct {
    int hq, wq;  /* phase plane size                          */
    long ps;     /* floats per (ci, d): sh * sw * hq * wq     */
    long l;      /* flattened outputs per depth slice          */
    long lpad;   /* l rounded up to whole tiles                */
} conv_geom;

static conv_geom geom(const csac__conv *cv, csac__shape in) {
    conv_geom g;
    csac__shape o = csac__conv_out_shape(cv, in);
    int sh = cv->stride[1], sw = cv->stride[2];
    g.hq = (in.h + 2 * cv->pad + sh - 1) / sh;
    g.wq = (in.w + 2 * cv->pad + sw - 1) / sw;
    g.ps = (long)sh * sw * g.hq * g.wq;
    g.l = (long)(o.h - 1) * g.wq + o.w;
    g.lpad = (g.l + TILE - 1) / TILE * TILE;
    return g;
}

size_t csac__conv_gather_floats(const csac__conv *cv, csac__shape in) {
    conv_geom g = geom(cv, in);
    return (size_t)cv->cin * in.d * g.ps + CSAC__SLACK;
}

size_t csac__conv_scratch_floats(const csac__conv *cv, csac__shape in) {
    return (size_t)CO * geom(cv, in).lpad;
}

double csac__conv_macs(const csac__conv *cv, csac__shape in, int dense) {
    csac__shape o = csac__conv_out_shape(cv, in);
    if (dense) return (double)o.c * o.d * o.h * o.w * cv->cin * cv->k * cv->k * cv->k;
    /* count taps per axis that land inside the input */
    double n[3] = {0, 0, 0};
    int isz[3] = {in.d, in.h, in.w}, osz[3] = {o.d, o.h, o.w};
    for (int a = 0; a < 3; a++)
        for (int x = 0; x < osz[a]; x++)
            for (int t = 0; t < cv->k; t++) {
                int i = x * cv->stride[a] + t * cv->dil - cv->pad;
                n[a] += i >= 0 && i < isz[a];
            }
    return (double)o.c * cv->cin * n[0] * n[1] * n[2];
}

typedef struct {
    const csac__conv *cv;
    const float *in;
    csac__shape ish, osh;
    conv_geom g;
    float *out, *gather, *scratch;
    const float *res;
    int relu;
    size_t scratch_per_thread;
} conv_job;

/* gathered[ci][d][ph][pw][hq][wq] = in[ci][d][hq*sh+ph-pad][wq*sw+pw-pad] or 0 */
static void gather_task(void *arg, int ith, int nth) {
    const conv_job *j = arg;
    const csac__conv *cv = j->cv;
    int sh = cv->stride[1], sw = cv->stride[2], pad = cv->pad, H = j->ish.h, W = j->ish.w;
    long lo, hi;
    csac_split((long)cv->cin * j->ish.d, ith, nth, &lo, &hi);
    for (long u = lo; u < hi; u++) {
        const float *src = j->in + u * H * W;
        float *dst = j->gather + u * j->g.ps;
        for (int ph = 0; ph < sh; ph++)
            for (int pw = 0; pw < sw; pw++)
                for (int hq = 0; hq < j->g.hq; hq++) {
                    float *row = dst + ((long)(ph * sw + pw) * j->g.hq + hq) * j->g.wq;
                    int h = hq * sh + ph - pad;
                    if (h < 0 || h >= H) {
                        memset(row, 0, sizeof(float) * j->g.wq);
                        continue;
                    }
                    const float *srow = src + (long)h * W;
                    if (sw == 1) {
                        /* interior is a plain copy; zero the borders */
                        int n0 = pad < j->g.wq ? pad : j->g.wq;
                        memset(row, 0, sizeof(float) * n0);
                        int ncopy = W < j->g.wq - pad ? W : j->g.wq - pad;
                        if (ncopy > 0) memcpy(row + pad, srow, sizeof(float) * ncopy);
                        for (int wq = pad + (ncopy > 0 ? ncopy : 0); wq < j->g.wq; wq++) row[wq] = 0.0f;
                    } else {
                        for (int wq = 0; wq < j->g.wq; wq++) {
                            int w = wq * sw + pw - pad;
                            row[wq] = w >= 0 && w < W ? srow[w] : 0.0f;
                        }
                    }
                }
    }
    /* the tail a last tile may read stays finite */
    if (ith == 0) memset(j->gather + (long)cv->cin * j->ish.d * j->g.ps, 0, sizeof(float) * CSAC__SLACK);
}

/* One register tile: dst[c][0..TILE) = sum over ci, valid kd, (kh, kw). */
static inline void conv_tile(const float *src, const float *w, int cin, long ci_stride, const long *kd_off,
                             const int *kd_idx, int nkd, const long *hw_off, int khw, int kvol, float *dst,
                             long ldd) {
    csac_vf acc[CO][NV];
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) acc[c][v] = csac_vzero();
    for (int ci = 0; ci < cin; ci++) {
        const float *sc = src + ci * ci_stride;
        const float *wc = w + (size_t)ci * kvol * CO;
        for (int q = 0; q < nkd; q++) {
            const float *sp = sc + kd_off[q];
            const float *wq = wc + (size_t)kd_idx[q] * khw * CO;
            for (int t = 0; t < khw; t++) {
                const float *s = sp + hw_off[t];
                csac_vf x[NV];
                for (int v = 0; v < NV; v++) x[v] = csac_vload(s + v * CSAC_VLEN);
                for (int c = 0; c < CO; c++) {
                    csac_vf wv = csac_vset1(wq[t * CO + c]);
                    for (int v = 0; v < NV; v++) acc[c][v] = csac_vmadd(acc[c][v], x[v], wv);
                }
            }
        }
    }
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) csac_vstore(dst + c * ldd + v * CSAC_VLEN, acc[c][v]);
}

/* out row = [relu](acc + bias [+ res]); the same arithmetic in vector and tail. */
static void epilogue_row(const float *acc, float bias, const float *res, int relu, float *out, int n) {
    int i = 0;
    csac_vf vb = csac_vset1(bias), z = csac_vzero();
    for (; i + CSAC_VLEN <= n; i += CSAC_VLEN) {
        csac_vf v = csac_vadd(csac_vload(acc + i), vb);
        if (res) v = csac_vadd(v, csac_vload(res + i));
        if (relu) v = csac_vmax(v, z);
        csac_vstore(out + i, v);
    }
    for (; i < n; i++) {
        float v = acc[i] + bias;
        if (res) v = v + res[i];
        if (relu) v = v > 0.0f ? v : 0.0f;
        out[i] = v;
    }
}

static void conv_task(void *arg, int ith, int nth) {
    const conv_job *j = arg;
    const csac__conv *cv = j->cv;
    const conv_geom *g = &j->g;
    int k = cv->k, kvol = k * k * k, khw = k * k, ncot = (cv->cout + CO - 1) / CO;
    int sd = cv->stride[0], sh = cv->stride[1], sw = cv->stride[2];
    float *scr = j->scratch + (size_t)ith * j->scratch_per_thread;
    long hw_off[CSAC__MAX_K * CSAC__MAX_K];
    if (k > CSAC__MAX_K) return; /* callers check k */
    for (int kh = 0; kh < k; kh++)
        for (int kw = 0; kw < k; kw++) {
            int a = kh * cv->dil, b = kw * cv->dil;
            hw_off[kh * k + kw] = (long)((a % sh) * sw + b % sw) * g->hq * g->wq + (long)(a / sh) * g->wq + b / sw;
        }
    long ohw = (long)j->osh.h * j->osh.w, ci_stride = (long)j->ish.d * g->ps;
    long lo, hi;
    csac_split((long)j->osh.d * ncot, ith, nth, &lo, &hi);
    for (long u = lo; u < hi; u++) {
        int od = (int)(u / ncot), cot = (int)(u % ncot);
        long kd_off[CSAC__MAX_K];
        int kd_idx[CSAC__MAX_K], nkd = 0;
        for (int kd = 0; kd < k; kd++) {
            int id = od * sd + kd * cv->dil - cv->pad;
            if (id < 0 || id >= j->ish.d) continue;
            kd_off[nkd] = (long)id * g->ps;
            kd_idx[nkd++] = kd;
        }
        const float *w = cv->w + (size_t)cot * cv->cin * kvol * CO;
        for (long p0 = 0; p0 < g->l; p0 += TILE)
            conv_tile(j->gather + p0, w, cv->cin, ci_stride, kd_off, kd_idx, nkd, hw_off, khw, kvol, scr + p0,
                      g->lpad);
        for (int c = 0; c < CO; c++) {
            int co = cot * CO + c;
            if (co >= cv->cout) break;
            float bias = cv->b ? cv->b[co] : 0.0f;
            long base = ((long)co * j->osh.d + od) * ohw;
            for (int oh = 0; oh < j->osh.h; oh++) {
                long o = base + (long)oh * j->osh.w;
                epilogue_row(scr + c * g->lpad + (long)oh * g->wq, bias, j->res ? j->res + o : NULL, j->relu,
                             j->out + o, j->osh.w);
            }
        }
    }
}

void csac__conv3d(csac_pool *pool, const csac__conv *cv, const float *in, csac__shape ish, float *out,
                  const float *res, int relu, float *gather, float *scratch) {
    conv_job j;
    j.cv = cv;
    j.in = in;
    j.ish = ish;
    j.osh = csac__conv_out_shape(cv, ish);
    j.g = geom(cv, ish);
    j.out = out;
    j.gather = gather;
    j.scratch = scratch;
    j.res = res;
    j.relu = relu;
    j.scratch_per_thread = csac__conv_scratch_floats(cv, ish);
    csac_pool_run(pool, gather_task, &j);
    csac_pool_run(pool, conv_task, &j);
}

/* ---- max-pool ---- */

csac__shape csac__maxpool_out_shape(int k, csac__shape in) {
    csac__shape o = {in.c, in.d / k, in.h / k, in.w / k};
    return o;
}

typedef struct {
    int k;
    const float *in;
    csac__shape ish, osh;
    float *out;
} pool_job;

/* Per output row: elementwise max of the k*k input rows (vectorised), then
 * max over each run of k columns. */
static void maxpool_task(void *arg, int ith, int nth) {
    const pool_job *j = arg;
    int k = j->k, W = j->ish.w, ow_n = j->osh.w;
    long lo, hi, ihw = (long)j->ish.h * W;
    float row[1024];
    csac_split((long)j->osh.c * j->osh.d, ith, nth, &lo, &hi);
    for (long u = lo; u < hi; u++) {
        int c = (int)(u / j->osh.d), od = (int)(u % j->osh.d);
        float *o = j->out + u * j->osh.h * ow_n;
        const float *base = j->in + ((long)c * j->ish.d + (long)od * k) * ihw;
        int n = ow_n * k; /* input columns used */
        for (int oh = 0; oh < j->osh.h; oh++) {
            if (n <= 1024) {
                const float *r0 = base + (long)oh * k * W;
                memcpy(row, r0, sizeof(float) * n);
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++) {
                        if (!a && !b) continue;
                        const float *r = r0 + a * ihw + (long)b * W;
                        int i = 0;
                        for (; i + CSAC_VLEN <= n; i += CSAC_VLEN)
                            csac_vstore(row + i, csac_vmax(csac_vload(row + i), csac_vload(r + i)));
                        for (; i < n; i++) row[i] = r[i] > row[i] ? r[i] : row[i];
                    }
                for (int ow = 0; ow < ow_n; ow++) {
                    float m = row[ow * k];
                    for (int e = 1; e < k; e++) m = row[ow * k + e] > m ? row[ow * k + e] : m;
                    o[(long)oh * ow_n + ow] = m;
                }
                continue;
            }
            for (int ow = 0; ow < ow_n; ow++) { /* wide rows: plain loops */
                float m = -FLT_MAX;
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++) {
                        const float *r = base + a * ihw + (long)(oh * k + b) * W + (long)ow * k;
                        for (int e = 0; e < k; e++) m = r[e] > m ? r[e] : m;
                    }
                o[(long)oh * ow_n + ow] = m;
            }
        }
    }
}

void csac__maxpool3d(csac_pool *pool, int k, const float *in, csac__shape ish, float *out) {
    pool_job j = {k, in, ish, csac__maxpool_out_shape(k, ish), out};
    csac_pool_run(pool, maxpool_task, &j);
}

/* ---- global average pool, FC, sigmoid (tiny: serial) ---- */

void csac__avgpool_global(const float *in, csac__shape ish, float *out) {
    long n = (long)ish.d * ish.h * ish.w;
    for (int c = 0; c < ish.c; c++) {
        const float *p = in + c * n;
        double s = 0;
        for (long i = 0; i < n; i++) s += p[i];
        out[c] = (float)(s / (double)n);
    }
}

void csac__linear(const float *w, const float *b, int nin, int nout, const float *x, float *y, int relu) {
    for (int o = 0; o < nout; o++) {
        const float *r = w + (size_t)o * nin;
        double s = b ? b[o] : 0.0;
        for (int i = 0; i < nin; i++) s += (double)r[i] * x[i];
        float v = (float)s;
        y[o] = relu && !(v > 0.0f) ? 0.0f : v;
    }
}

float csac__sigmoid(float x) {
    if (x >= 0) return (float)(1.0 / (1.0 + exp(-(double)x)));
    double e = exp((double)x);
    return (float)(e / (1.0 + e));
}
