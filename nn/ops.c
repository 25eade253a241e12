/* ops.c - CSAC-Net-3D kernels: 3D conv, max-pool, global average pool, FC.
 *
 * Convs run one of three ways, all written once against simd.h:
 * - direct: the input is "gathered" into a zero-padded copy split into
 *   stride phases (h % sh, w % sw), so every tap of a strided or dilated
 *   conv is a constant offset into a contiguous plane. Outputs of one depth
 *   slice are computed in register tiles of CO output channels x NV vectors;
 *   a vector is CSAC_VLEN consecutive positions of the padded plane's
 *   flattened (oh * Wq + ow) index that starts on an output, so no lanes go
 *   to padding columns when rows are a multiple of CSAC_VLEN wide. Depth taps
 *   and kernel rows entirely outside the input are skipped; bias, residual
 *   and ReLU are applied in registers before the one store of each output.
 * - channel-vector (AVX-512, planes narrower than a vector: the 8^3 dilated
 *   and 4^3 layers): the same gather and taps, but a register tile holds CV vectors
 *   of output channels at up to 12 positions; each tap loads CV weight
 *   vectors and broadcasts one input per position, so no lane idles on
 *   narrow rows. Same summation order as the row kernel: same bits.
 * - Winograd F(2x2, 3x3) over (h, w) for k = 3, stride 1 (see wino_task),
 *   chosen where it measured faster (winograd_auto): 16 instead of 36
 *   multiplies per 2x2 outputs; without FMA (wasm) on every such conv of the
 *   network, with FMA at dilation 1 on planes from 8 x 8.
 * Threads claim (depth slice, channel block) units in chunks from the front
 * of their own contiguous share, then from the back of the others' (a
 * descheduled thread delays one chunk, not its share; see claim); each
 * gathers (and transforms) the input slices under its units
 * into its own ring buffer as it reaches them, so one conv is one barrier
 * and the data stay in that core's cache. No reduction is split, and every
 * output's summation order is fixed: any thread count, and whichever thread
 * takes a unit, gives the same bits.
 */
#include "ops.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"

/* Register tile: CO output channels x NV vectors of CSAC_VLEN outputs.
 * wasm: 4 x 2 is the largest tile V8 keeps in its 15 xmm registers (8
 * accumulators, 2 inputs, a broadcast and the product: no FMA); a spill costs
 * more than the extra broadcasts save. AVX2: 4 x 3 (12 FMA chains in 16 ymm).
 * AVX-512 (32 zmm): 8 x 3, 24 chains and fewer loads per FMA; measured 11 %
 * faster than 4 x 3 over the network's convs, ahead of 6x3, 9x3, 6x4, 4x4,
 * 8x2, 10x2 and 12x2 (CO must divide the channel counts: 16..128). */
#ifndef CSAC_CONV_CO /* overridable for tuning experiments */
#if CSAC_VLEN >= 16
#define CSAC_CONV_CO 8
#else
#define CSAC_CONV_CO 4
#endif
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

/* Channel-vector tile (small planes, AVX-512): CV vectors of output
 * channels x up to 24 / CV positions: 1 row x 8 (rows of 8 and more) or
 * 3 rows x 4 (narrower rows). Measured on the network's 8^3 and 4^3 layers
 * against 4 x (1 x 4), 2 x (2 x 4) and 1 x (4 x 4): 1 x 8 is the fastest on
 * 8-wide rows, 3 x 4 on 4-wide ones (fewer weight loads per FMA). */
#ifndef CSAC_CONV_CV
#define CSAC_CONV_CV 2
#endif
#define CV CSAC_CONV_CV
#define CVC (CV * CSAC_VLEN) /* channels per channel-vector block */
#define CHAN_POS 8           /* positions per row tile, at most */
#define CHAN_ROWS 3          /* rows per tile for rows narrower than CHAN_POS */
#define CHAN_NARROW 4        /* positions per row in those tiles */
#define CHAN_TILE (CHAN_ROWS * CHAN_NARROW > CHAN_POS ? CHAN_ROWS * CHAN_NARROW : CHAN_POS) /* positions, at most */

_Static_assert(NV >= 1 && NV <= 4, "conv_task dispatches tiles of 1..4 vectors");
_Static_assert(CHAN_POS == 8 && CHAN_NARROW == 4, "chan_row and chan_narrow dispatch row ends of 1..7 and 1..3 positions");
_Static_assert(CSAC_VLEN <= CSAC__SLACK, "gather slack must cover one vector read past the last plane");

csac__shape csac__conv_out_shape(const csac__conv *cv, csac__shape in) {
    csac__shape o;
    int span = cv->dil * (cv->k - 1) + 1;
    o.c = cv->cout;
    o.d = (in.d + 2 * cv->pad - span) / cv->stride[0] + 1;
    o.h = (in.h + 2 * cv->pad - span) / cv->stride[1] + 1;
    o.w = (in.w + 2 * cv->pad - span) / cv->stride[2] + 1;
    return o;
}

/* Direct and channel-vector: [ceil(cout/cb)][cin][k^3][cb] for channel
 * blocks of cb (CO or CVC), zero rows for cout % cb. */
static void direct_pack(const float *w, int cin, int cout, int k, int cb, float *packed) {
    int kvol = k * k * k, ncot = (cout + cb - 1) / cb;
    for (int t = 0; t < ncot; t++)
        for (int ci = 0; ci < cin; ci++)
            for (int q = 0; q < kvol; q++)
                for (int c = 0; c < cb; c++) {
                    int co = t * cb + c;
                    packed[(((size_t)t * cin + ci) * kvol + q) * cb + c] =
                        co < cout ? w[((size_t)co * cin + ci) * kvol + q] : 0.0f;
                }
}

/* Geometry of the gathered (padded, phase-split) input. */
typedef struct {
    int hq, wq;  /* phase plane size                      */
    long ps;     /* floats per (ci, d): sh * sw * hq * wq */
} conv_geom;

static conv_geom geom(const csac__conv *cv, csac__shape in) {
    conv_geom g;
    int sh = cv->stride[1], sw = cv->stride[2];
    g.hq = (in.h + 2 * cv->pad + sh - 1) / sh;
    g.wq = (in.w + 2 * cv->pad + sw - 1) / sw;
    g.ps = (long)sh * sw * g.hq * g.wq;
    return g;
}

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

static size_t wino_per_thread(const csac__conv *cv, csac__shape in);

/* One thread's gather region, in floats (a multiple of 16: 64-byte aligned). */
static size_t gather_per_thread(const csac__conv *cv, csac__shape in) {
    if (csac__conv_algo(cv, in) == CSAC__CONV_WINOGRAD) return wino_per_thread(cv, in);
    return round16((size_t)cv->cin * (cv->dil * (cv->k - 1) + 1) * geom(cv, in).ps + CSAC__SLACK);
}

size_t csac__conv_gather_floats(const csac__conv *cv, csac__shape in, int nth) {
    return (size_t)(nth < 1 ? 1 : nth) * gather_per_thread(cv, in);
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

/* Winograd geometry, see wino_task. */
typedef struct {
    int dil, s;      /* dilation; phase factor s = 2 * dil                   */
    int hq, wq;      /* gathered phase plane                                 */
    long ps;         /* floats per gathered plane: s * s * hq * wq           */
    int ntv, ntb;    /* tile vectors per depth slice; blocks of NV of them   */
} wino_geom;

typedef struct {
    const csac__conv *cv;
    const float *in;
    csac__shape ish, osh;
    conv_geom g;
    wino_geom wg;
    float *out, *gather;
    size_t gather_stride; /* floats per thread in gather */
    const float *res;
    int relu;
    int cb;               /* output channels per unit: CO (direct) or CVC (channel-vector) */
    int nth;
    long chunk;           /* units per claim */
    /* units (output slice x channel block) left in each thread's share:
     * (first << 32) | end; see claim */
    _Atomic uint64_t share[CSAC__MAX_THREADS];
} conv_job;

/* Each thread owns a contiguous share of the units and claims chunks from
 * its front, so consecutive chunks continue its gather ring (taking chunks
 * from one shared counter, two threads alternated and each restarted its
 * ring, gathering and transforming up to twice the slices). A thread whose
 * share is done takes chunks from the back of the others' shares: one that
 * the host descheduled holds up only its current chunk, not its whole share.
 * Each unit is computed the same way whichever thread takes it, so results
 * stay bitwise identical; the kernels restart their rings when a chunk lies
 * before the previous one. */
enum { CHUNKS_PER_THREAD = 6 };

static void shares_init(conv_job *j, long total, int nth) {
    j->chunk = total / ((long)nth * CHUNKS_PER_THREAD);
    if (j->chunk < 1) j->chunk = 1;
    if (nth > CSAC__MAX_THREADS) nth = CSAC__MAX_THREADS; /* more threads share the fronts */
    j->nth = nth;
    for (int t = 0; t < nth; t++) {
        uint64_t a = (uint64_t)(total * t / nth), b = (uint64_t)(total * (t + 1) / nth);
        atomic_init(&j->share[t], a << 32 | b);
    }
}

static int claim(conv_job *j, int ith, long *lo, long *hi) {
    long chunk = j->chunk;
    for (int k = 0; k < j->nth; k++) {
        int t = (ith + k) % j->nth, own = k == 0;
        uint64_t v = atomic_load_explicit(&j->share[t], memory_order_relaxed);
        for (;;) {
            long a = (long)(v >> 32), b = (long)(v & 0xffffffffu), l, h;
            if (a >= b) break;
            if (own) l = a, h = a + chunk < b ? a + chunk : b; /* own share: from the front */
            else h = b, l = b - chunk > a ? b - chunk : a;       /* another's: from the back */
            uint64_t nv = own ? (uint64_t)h << 32 | (uint64_t)b : (uint64_t)a << 32 | (uint64_t)l;
            if (atomic_compare_exchange_weak_explicit(&j->share[t], &v, nv, memory_order_relaxed, memory_order_relaxed)) {
                *lo = l;
                *hi = h;
                return 1;
            }
        }
    }
    return 0;
}

/* clang turns these loops back into memset/memcpy calls, which cost wasm more
 * than short rows take (2 % of a forward); GCC keeps the loops. */
#if defined(__clang__)
#define CSAC_NO_MEMCALLS __attribute__((no_builtin("memset", "memcpy")))
#else
#define CSAC_NO_MEMCALLS
#endif

CSAC_NO_MEMCALLS static void zero_floats(float *dst, long n) {
    long i = 0, nv = n - n % CSAC_VLEN;
    for (; i < nv; i += CSAC_VLEN) csac_vstore(dst + i, csac_vzero());
    for (; i < n; i++) dst[i] = 0.0f;
}

CSAC_NO_MEMCALLS static void copy_floats(float *dst, const float *src, long n) {
    long i = 0, nv = n - n % CSAC_VLEN;
    for (; i < nv; i += CSAC_VLEN) csac_vstore(dst + i, csac_vload(src + i));
    for (; i < n; i++) dst[i] = src[i];
}

/* dst[ph][pw][hq][wq] = in[ci][d][hq*sh+ph-pad][wq*sw+pw-pad] or 0: one
 * zero-padded plane split into sh x sw phases of hq_n x wq_n. Vector copies:
 * memcpy/memset of a row are slow calls in this wasm build. */
static void gather_plane(const conv_job *j, int ci, int d, float *dst, int sh, int sw, int hq_n, int wq_n) {
    int pad = j->cv->pad, H = j->ish.h, W = j->ish.w;
    const float *src = j->in + ((long)ci * j->ish.d + d) * H * W;
    for (int ph = 0; ph < sh; ph++)
        for (int pw = 0; pw < sw; pw++) {
            /* columns wq with 0 <= wq*sw + pw - pad < W: [w0, w1) */
            int w0 = pad - pw <= 0 ? 0 : (pad - pw + sw - 1) / sw;
            int w1 = W - 1 + pad - pw < 0 ? 0 : (W - 1 + pad - pw) / sw + 1;
            if (w1 > wq_n) w1 = wq_n;
            if (w0 > w1) w0 = w1;
            for (int hq = 0; hq < hq_n; hq++) {
                float *row = dst + ((long)(ph * sw + pw) * hq_n + hq) * wq_n;
                int h = hq * sh + ph - pad;
                if (h < 0 || h >= H) {
                    zero_floats(row, wq_n);
                    continue;
                }
                const float *srow = src + (long)h * W + w0 * sw + pw - pad;
                zero_floats(row, w0);
                if (sw == 1) {
                    copy_floats(row + w0, srow, w1 - w0);
                } else {
                    int wq = w0, left = W - (w0 * sw + pw - pad); /* the loads stay inside the input row */
                    if (sw == 2) /* every other column */
                        for (; wq + CSAC_VLEN <= w1 && 2 * (wq - w0 + CSAC_VLEN) <= left; wq += CSAC_VLEN) {
                            const float *p = srow + 2L * (wq - w0);
                            csac_vstore(row + wq, csac_vunzip_even(csac_vload(p), csac_vload(p + CSAC_VLEN)));
                        }
                    if (sw == 4) /* every fourth: even lanes of even lanes */
                        for (; wq + CSAC_VLEN <= w1 && 4 * (wq - w0 + CSAC_VLEN) <= left; wq += CSAC_VLEN) {
                            const float *p = srow + 4L * (wq - w0);
                            csac_vf e0 = csac_vunzip_even(csac_vload(p), csac_vload(p + CSAC_VLEN));
                            csac_vf e1 = csac_vunzip_even(csac_vload(p + 2 * CSAC_VLEN), csac_vload(p + 3 * CSAC_VLEN));
                            csac_vstore(row + wq, csac_vunzip_even(e0, e1));
                        }
                    for (; wq < w1; wq++) row[wq] = srow[(long)(wq - w0) * sw];
                }
                zero_floats(row + w1, wq_n - w1);
            }
        }
}

/* Vectors of one output depth slice, in order: each starts at the first
 * output position not yet covered and spans CSAC_VLEN plane positions (more
 * than one row only when rows are narrower than a vector). */
typedef struct {
    int oh, ow, wq;     /* output rows and columns, plane row length    */
    int k, dil, sh, pad, H;
    int r, c;           /* where the next vector starts                 */
    int rt0, rt1;       /* taps of row r (cached: no division per tile) */
} vec_walk;

typedef struct {
    int nv;             /* vectors in the tile, 1..NV                  */
    int t0, t1;         /* taps [t0, t1) of the kh-major (kh, kw) list */
    int r[NV], c[NV];   /* output row and column of each first lane    */
    int contig;         /* vector v starts v * CSAC_VLEN after the first */
} conv_tile;

/* Kernel rows kh whose input row is inside the input, as taps [*t0, *t1),
 * for the output rows r0..r1: the union, since the bounds fall as r grows. */
static void kh_taps(const vec_walk *vw, int r0, int r1, int *t0, int *t1) {
    int a = vw->pad - r1 * vw->sh, b = vw->H - 1 + vw->pad - r0 * vw->sh;
    int lo = a <= 0 ? 0 : (a + vw->dil - 1) / vw->dil;
    int hi = b < 0 ? -1 : b / vw->dil;
    if (hi > vw->k - 1) hi = vw->k - 1;
    if (hi < lo) *t0 = *t1 = 0;
    else *t0 = lo * vw->k, *t1 = (hi + 1) * vw->k;
}

static void walk_start(vec_walk *vw) {
    vw->r = vw->c = 0;
    kh_taps(vw, 0, 0, &vw->rt0, &vw->rt1);
}

/* The next vector's start and taps; 0 when the slice is done. */
static int next_vec(vec_walk *vw, int *r, int *c, int *t0, int *t1) {
    if (vw->r >= vw->oh) return 0;
    *r = vw->r;
    *c = vw->c;
    int n = vw->c + CSAC_VLEN;
    if (n <= vw->wq) { /* within row r */
        *t0 = vw->rt0;
        *t1 = vw->rt1;
        vw->c = n;
    } else {
        int rl = vw->r + (n - 1) / vw->wq; /* row of the last lane */
        kh_taps(vw, vw->r, rl < vw->oh ? rl : vw->oh - 1, t0, t1);
        vw->r += n / vw->wq;
        vw->c = n % vw->wq;
    }
    if (vw->c >= vw->ow) vw->r++, vw->c = 0;
    if (vw->r != *r) kh_taps(vw, vw->r, vw->r, &vw->rt0, &vw->rt1);
    return 1;
}

/* The next NV vectors (fewer at the end of the slice) and the union of their
 * taps; 0 when the slice is done. A union computes a few zero taps at the
 * top and bottom rows, but keeps the tiles full (splitting them at every
 * change of taps gave native tiles too small to fill its FMA pipes).
 * t->contig: each vector starts CSAC_VLEN after the previous one. */
static int next_tile(vec_walk *vw, conv_tile *t) {
    if (vw->r < vw->oh && vw->c + NV * CSAC_VLEN <= vw->ow) { /* common: NV vectors left in this row */
        for (int v = 0; v < NV; v++) t->r[v] = vw->r, t->c[v] = vw->c + v * CSAC_VLEN;
        t->t0 = vw->rt0;
        t->t1 = vw->rt1;
        t->nv = NV;
        t->contig = 1;
        vw->c += NV * CSAC_VLEN;
        if (vw->c >= vw->ow) {
            vw->r++, vw->c = 0;
            kh_taps(vw, vw->r, vw->r, &vw->rt0, &vw->rt1);
        }
        return 1;
    }
    if (!next_vec(vw, &t->r[0], &t->c[0], &t->t0, &t->t1)) return 0;
    t->nv = 1;
    t->contig = 1;
    while (t->nv < NV) {
        int a, b, v = t->nv;
        if (!next_vec(vw, &t->r[v], &t->c[v], &a, &b)) break;
        if (a < b) { /* the union; an empty range adds nothing */
            if (t->t0 == t->t1) t->t0 = a, t->t1 = b;
            if (a < t->t0) t->t0 = a;
            if (b > t->t1) t->t1 = b;
        }
        t->contig &= t->r[v] == t->r[v - 1] && t->c[v] == t->c[v - 1] + CSAC_VLEN;
        t->nv++;
    }
    return 1;
}

/* The taps a tile sums over, in order: the valid kd, then the (kh, kw) taps
 * [t0, t1) of its rows' valid kernel rows; as offsets into one input
 * channel's gathered planes and one input channel's packed weights. One
 * flat loop: a loop per kd cost up to 20 % on the 8^3 layers, natively and
 * in wasm. */
typedef struct {
    int n, t0, t1;
    long in[CSAC__MAX_K * CSAC__MAX_K * CSAC__MAX_K];
    long w[CSAC__MAX_K * CSAC__MAX_K * CSAC__MAX_K];
} tap_list;

/* What one tile needs besides its own vectors. */
typedef struct {
    const float *src;     /* this thread's gathered planes [ci][d]  */
    long ci_stride;
    const float *w;       /* packed weights of this channel block */
    const long *kd_off;   /* gathered-plane offsets of the valid kd */
    const int *kd_idx;
    int nkd, od, cot;
    const long *hw_off;   /* offset of each (kh, kw) tap          */
} tile_ctx;

/* The list for taps [t0, t1) (kept when it already has them). */
static void tap_list_set(const tile_ctx *x, int khw, int cb, int t0, int t1, tap_list *tp) {
    if (tp->n >= 0 && tp->t0 == t0 && tp->t1 == t1) return;
    tp->n = 0;
    tp->t0 = t0;
    tp->t1 = t1;
    for (int q = 0; q < x->nkd; q++)
        for (int t = t0; t < t1; t++, tp->n++) {
            tp->in[tp->n] = x->kd_off[q] + x->hw_off[t];
            tp->w[tp->n] = ((long)x->kd_idx[q] * khw + t) * cb;
        }
}

/* One tile: sums over ci, the valid kd and the tile's (kh, kw) taps in
 * registers, then writes [relu](acc + bias [+ res]) straight to the output.
 * nv and contig are constants after inlining: contiguous vectors and the
 * weights are read at constant offsets from one pointer, which wasm folds
 * into the loads (a computed address costs V8 an extra instruction). Keep
 * the tap loop simple: LLVM hoists the loads of unrolled taps, and V8 then
 * spills the accumulators. */
static inline __attribute__((always_inline)) void conv_tile_run(const conv_job *j, const tile_ctx *x, const tap_list *tp,
                                                                const conv_tile *tl, const int nv, const int contig) {
    const csac__conv *cv = j->cv;
    int cin = cv->cin, nt = tp->n;
    long wci = (long)cv->k * cv->k * cv->k * CO;
    const float *sb = x->src + (long)tl->r[0] * j->g.wq + tl->c[0];
    long dq[NV];
    csac_vf acc[CO][NV];
    for (int v = 0; v < nv; v++)
        dq[v] = contig ? (long)v * CSAC_VLEN : ((long)tl->r[v] - tl->r[0]) * j->g.wq + tl->c[v] - tl->c[0];
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < nv; v++) acc[c][v] = csac_vzero();
    const float *wc = x->w;
    for (int ci = 0; ci < cin; ci++, sb += x->ci_stride, wc += wci)
        for (int i = 0; i < nt; i++) { /* one flat loop over the valid (kd, kh, kw), in order */
            const float *pk = sb + tp->in[i], *wt = wc + tp->w[i];
            csac_vf xv[NV];
            for (int v = 0; v < nv; v++) xv[v] = csac_vload(pk + dq[v]);
            for (int c = 0; c < CO; c++) {
                csac_vf wv = csac_vset1(wt[c]);
                for (int v = 0; v < nv; v++) acc[c][v] = csac_vmadd(acc[c][v], xv[v], wv);
            }
        }
    int OH = j->osh.h, OW = j->osh.w;
    csac_vf z = csac_vzero();
    for (int c = 0; c < CO; c++) {
        int co = x->cot * CO + c;
        if (co >= cv->cout) break;
        float bias = cv->b ? cv->b[co] : 0.0f;
        csac_vf vb = csac_vset1(bias);
        long base = ((long)co * j->osh.d + x->od) * OH * OW;
        for (int v = 0; v < nv; v++) {
            if (tl->c[v] + CSAC_VLEN <= OW) { /* the whole vector is in one output row */
                long o = base + (long)tl->r[v] * OW + tl->c[v];
                csac_vf y = csac_vadd(acc[c][v], vb);
                if (j->res) y = csac_vadd(y, csac_vload(j->res + o));
                if (j->relu) y = csac_vmax(y, z);
                csac_vstore(j->out + o, y);
                continue;
            }
            float lane[CSAC_VLEN]; /* row end or several rows: row by row, padding skipped */
            csac_vstore(lane, acc[c][v]);
            for (int i = 0, r = tl->r[v], col = tl->c[v]; i < CSAC_VLEN && r < OH; r++) {
                int n = OW - col < CSAC_VLEN - i ? OW - col : CSAC_VLEN - i;
                long o = base + (long)r * OW + col;
                for (int e = 0; e < n; e++) {
                    float y = lane[i + e] + bias;
                    if (j->res) y = y + j->res[o + e];
                    if (j->relu) y = y > 0.0f ? y : 0.0f;
                    j->out[o + e] = y;
                }
                i += j->g.wq - col; /* to the next row's first column */
                col = 0;
            }
        }
    }
}

/* Instantiates conv_tile_run for the tile's vector count and layout. */
static void conv_tile_any(const conv_job *j, const tile_ctx *x, const tap_list *tp, const conv_tile *tl) {
#define CSAC_TILE_CASE(n)                                     \
    case n:                                                   \
        if (tl->contig) conv_tile_run(j, x, tp, tl, n, 1);    \
        else conv_tile_run(j, x, tp, tl, n, 0);               \
        break;
    switch (tl->nv) {
#if NV >= 4
        CSAC_TILE_CASE(4)
#endif
#if NV >= 3
        CSAC_TILE_CASE(3)
#endif
#if NV >= 2
        CSAC_TILE_CASE(2)
#endif
    default:
        conv_tile_run(j, x, tp, tl, 1, 1);
        break;
    }
#undef CSAC_TILE_CASE
}

/* Channel-vector tile (small planes): nr rows from output row r x np
 * positions from column c (constants after inlining), x CV vectors of output
 * channels. Each tap loads CV weight vectors and broadcasts nr * np inputs,
 * so no lane idles however narrow the rows are (the row kernel fills half of
 * its 16-lane vectors on a 4 x 4 plane). Same summation order as the row
 * kernel (ci, valid kd, taps), so the two give the same bits. */
static inline __attribute__((always_inline)) void chan_tile_run(const conv_job *j, const tile_ctx *x, const tap_list *tp,
                                                                int r, int c, const int nr, const int np) {
    const csac__conv *cv = j->cv;
    int cin = cv->cin, nt = tp->n;
    long wq = j->g.wq, wci = (long)cv->k * cv->k * cv->k * CVC;
    const float *sb = x->src + (long)r * wq + c, *wc = x->w;
    csac_vf acc[CV][CHAN_TILE];
    for (int v = 0; v < CV; v++)
        for (int p = 0; p < nr * np; p++) acc[v][p] = csac_vzero();
    for (int ci = 0; ci < cin; ci++, sb += x->ci_stride, wc += wci)
        for (int i = 0; i < nt; i++) { /* one flat loop over the valid (kd, kh, kw), in order */
            const float *pk = sb + tp->in[i], *wt = wc + tp->w[i];
            csac_vf wv[CV];
            for (int v = 0; v < CV; v++) wv[v] = csac_vload(wt + v * CSAC_VLEN);
            for (int rr = 0; rr < nr; rr++)
                for (int p = 0; p < np; p++) {
                    csac_vf xb = csac_vset1(pk[rr * wq + p]);
                    for (int v = 0; v < CV; v++) acc[v][rr * np + p] = csac_vmadd(acc[v][rr * np + p], wv[v], xb);
                }
        }
    /* transpose through the stack: the outputs are channel planes */
    float buf[CHAN_TILE][CVC];
    for (int p = 0; p < nr * np; p++)
        for (int v = 0; v < CV; v++) csac_vstore(&buf[p][v * CSAC_VLEN], acc[v][p]);
    int OW = j->osh.w;
    long plane = (long)j->osh.h * OW, pos = (long)x->od * plane + (long)r * OW + c;
    for (int e = 0; e < CVC; e++) {
        int co = x->cot * CVC + e;
        if (co >= cv->cout) break;
        float bias = cv->b ? cv->b[co] : 0.0f;
        for (int rr = 0; rr < nr; rr++) {
            long o = (long)co * j->osh.d * plane + pos + (long)rr * OW;
            for (int p = 0; p < np; p++) {
                float y = buf[rr * np + p][e] + bias;
                if (j->res) y += j->res[o + p];
                if (j->relu) y = y > 0.0f ? y : 0.0f;
                j->out[o + p] = y;
            }
        }
    }
}
#define CHAN_CASE(nr, n)                      \
    case n:                                   \
        chan_tile_run(j, x, &tp, r, c, nr, n); \
        break;

/* Rows of CHAN_ROWS at a time (their taps' union) in CHAN_NARROW columns;
 * returns the first row left over. */
static __attribute__((noinline)) int chan_narrow(const conv_job *j, const tile_ctx *x, const vec_walk *vw) {
    int r = 0, c, t0, t1, ow = j->osh.w;
    tap_list tp;
    tp.n = -1;
    for (; r + CHAN_ROWS <= j->osh.h; r += CHAN_ROWS) {
        kh_taps(vw, r, r + CHAN_ROWS - 1, &t0, &t1);
        tap_list_set(x, j->cv->k * j->cv->k, CVC, t0, t1, &tp);
        for (c = 0; c + CHAN_NARROW <= ow; c += CHAN_NARROW) chan_tile_run(j, x, &tp, r, c, CHAN_ROWS, CHAN_NARROW);
        switch (ow - c) {
            CHAN_CASE(CHAN_ROWS, 3)
            CHAN_CASE(CHAN_ROWS, 2)
            CHAN_CASE(CHAN_ROWS, 1)
        default:
            break;
        }
    }
    return r;
}

/* Row r, CHAN_POS positions a tile, then the row's end. */
static __attribute__((noinline)) void chan_row(const conv_job *j, const tile_ctx *x, const vec_walk *vw, int r) {
    int c, t0, t1, ow = j->osh.w;
    tap_list tp;
    tp.n = -1;
    kh_taps(vw, r, r, &t0, &t1);
    tap_list_set(x, j->cv->k * j->cv->k, CVC, t0, t1, &tp);
    for (c = 0; c + CHAN_POS <= ow; c += CHAN_POS) chan_tile_run(j, x, &tp, r, c, 1, CHAN_POS);
    switch (ow - c) {
        CHAN_CASE(1, 7)
        CHAN_CASE(1, 6)
        CHAN_CASE(1, 5)
        CHAN_CASE(1, 4)
        CHAN_CASE(1, 3)
        CHAN_CASE(1, 2)
        CHAN_CASE(1, 1)
    default:
        break;
    }
}

/* One channel block of one output slice: rows narrower than CHAN_POS in
 * blocks of CHAN_ROWS, the rest row by row. */
static __attribute__((noinline)) void chan_slice(const conv_job *j, const tile_ctx *x) {
    vec_walk vw = {j->osh.h, j->osh.w, j->g.wq, j->cv->k, j->cv->dil, j->cv->stride[1], j->cv->pad, j->ish.h, 0, 0, 0, 0};
    int r = j->osh.w < CHAN_POS ? chan_narrow(j, x, &vw) : 0;
    for (; r < j->osh.h; r++) chan_row(j, x, &vw, r);
}
#undef CHAN_CASE

/* One channel block of one output slice with the row kernel. */
static inline __attribute__((always_inline)) void row_slice(const conv_job *j, const tile_ctx *x) {
    const csac__conv *cv = j->cv;
    vec_walk vw = {j->osh.h, j->osh.w, j->g.wq, cv->k, cv->dil, cv->stride[1], cv->pad, j->ish.h, 0, 0, 0, 0};
    conv_tile tl;
    tap_list tp;
    tp.n = -1;
    walk_start(&vw);
    while (next_tile(&vw, &tl)) {
        tap_list_set(x, cv->k * cv->k, CO, tl.t0, tl.t1, &tp);
        conv_tile_any(j, x, &tp, &tl);
    }
}

/* The direct convs' thread body: claims units, gathers their input slices,
 * runs chan (a constant after inlining: the channel-vector kernel, or the
 * row kernel) on each. Two task functions rather than a branch per unit:
 * the channel-vector call inside the row kernel's task, though never taken
 * there, made V8 run wasm's direct layers 15-30 % slower. */
static inline __attribute__((always_inline)) void direct_units(conv_job *j, int ith, const int chan) {
    const csac__conv *cv = j->cv;
    const conv_geom *g = &j->g;
    int k = cv->k, kvol = k * k * k, ncot = (cv->cout + j->cb - 1) / j->cb;
    int sd = cv->stride[0], sh = cv->stride[1], sw = cv->stride[2];
    long hw_off[CSAC__MAX_K * CSAC__MAX_K];
    if (k > CSAC__MAX_K) return; /* callers check k */
    for (int kh = 0; kh < k; kh++)
        for (int kw = 0; kw < k; kw++) {
            int a = kh * cv->dil, b = kw * cv->dil;
            hw_off[kh * k + kw] = (long)((a % sh) * sw + b % sw) * g->hq * g->wq + (long)(a / sh) * g->wq + b / sw;
        }
    long lo, hi;
    /* Each thread gathers the input depths of its output slices into its own
     * ring of span slices [ci][depth % span], as the slices reach them: no
     * barrier between gather and conv, and the planes stay in this core's
     * cache. Zeroed first: a row-end vector may read past its plane. */
    int span = cv->dil * (k - 1) + 1;
    long cs = (long)span * g->ps;
    float *gb = j->gather + (size_t)ith * j->gather_stride;
    int zeroed = 0, dnext = 0, od_prev = -1;
    while (claim(j, ith, &lo, &hi)) {
        if (!zeroed) {
            zero_floats(gb, cv->cin * cs + CSAC__SLACK);
            zeroed = 1;
        }
        int od0 = (int)(lo / ncot);
        if (od0 < od_prev) dnext = 0; /* a chunk taken from behind: restart the ring */
        od_prev = (int)((hi - 1) / ncot);
        for (int od = od0; od <= (int)((hi - 1) / ncot); od++) {
            if (dnext < od * sd - cv->pad) dnext = od * sd - cv->pad; /* a gap (chunks, depth stride > span): skip unread slices */
            for (; dnext < j->ish.d && dnext < od * sd - cv->pad + span; dnext++)
                for (int ci = 0; ci < cv->cin; ci++)
                    gather_plane(j, ci, dnext, gb + ci * cs + (dnext % span) * g->ps, sh, sw, g->hq, g->wq);
            long kd_off[CSAC__MAX_K];
            int kd_idx[CSAC__MAX_K];
            tile_ctx x = {gb, cs, NULL, kd_off, kd_idx, 0, od, 0, hw_off};
            for (int kd = 0; kd < k; kd++) {
                int id = od * sd + kd * cv->dil - cv->pad;
                if (id < 0 || id >= j->ish.d) continue;
                kd_off[x.nkd] = (long)(id % span) * g->ps;
                kd_idx[x.nkd++] = kd;
            }
            long c0 = (long)od * ncot < lo ? lo - (long)od * ncot : 0, c1 = (long)(od + 1) * ncot > hi ? hi - (long)od * ncot : ncot;
            for (x.cot = (int)c0; x.cot < c1; x.cot++) {
                x.w = cv->w + (size_t)x.cot * cv->cin * kvol * j->cb;
                if (chan) chan_slice(j, &x);
                else row_slice(j, &x);
            }
        }
    }
}

static void conv_task(void *arg, int ith, int nth) { (void)nth; direct_units(arg, ith, 0); }

static void chan_task(void *arg, int ith, int nth) { (void)nth; direct_units(arg, ith, 1); }

/* ---- Winograd F(2x2, 3x3) over (h, w), for k = 3 and stride 1 ----
 *
 * Each (ci, kd) adds a 2D 3x3 conv over (h, w), which Winograd computes as
 * Y = A^T [(G g G^T) . (B^T d B)] A per 2x2 outputs: 16 multiplies instead of
 * 36 (wasm has no FMA: multiplies and adds both count). A dilation d splits
 * the plane into d x d interleaved lattices, each an undilated conv; the 4x4
 * input patch of a tile then lies on the phases (mod 2d) that gather_plane
 * produces with stride 2d, so that a vector of CSAC_VLEN tiles along a row
 * reads each patch element with one load. Output slices go one depth phase
 * (mod d) after another (wino_od). Per thread and output slice: the new
 * input slice is gathered and transformed into a ring of 3 slices
 * of V[tile block][slice][xi][ci][tiles] (xi = one of the 16 patch
 * positions); then per (tile block, channel block) 16 register-tiled GEMMs
 * over (kd, ci) that read V and U in order, the output transform and the
 * epilogue. Accuracy: the transforms use only 0, +-1, +-1/2 (U is computed
 * in double at load); features stay within 1.2e-6 relative of PyTorch. */

static int wino_ti(int o, int a, int dil) { /* tile rows (or columns) of phase a */
    int n = a < o ? (o - a + dil - 1) / dil : 0;
    return (n + 1) / 2;
}

static wino_geom wgeom(const csac__conv *cv, csac__shape in) {
    wino_geom g;
    csac__shape o = csac__conv_out_shape(cv, in);
    int rows = 0, cols = 0;
    g.dil = cv->dil;
    g.s = 2 * cv->dil;
    for (int a = 0; a < g.dil; a++) {
        rows += wino_ti(o.h, a, g.dil);
        cols += wino_ti(o.w, a, g.dil);
    }
    g.hq = wino_ti(o.h, 0, g.dil) + 1;
    g.wq = wino_ti(o.w, 0, g.dil) + 1;
    g.ps = (long)g.s * g.s * g.hq * g.wq;
    g.ntv = (rows * cols + CSAC_VLEN - 1) / CSAC_VLEN; /* 2x2 tiles on the dil x dil lattices */
    g.ntb = (g.ntv + NV - 1) / NV;
    return g;
}

/* Lanes the row kernel computes per output slice (padding columns included). */
static long row_lanes(const csac__conv *cv, csac__shape in, csac__shape o) {
    if (o.w >= CSAC_VLEN) return (long)o.h * ((o.w + CSAC_VLEN - 1) / CSAC_VLEN) * CSAC_VLEN;
    long wq = geom(cv, in).wq;
    return (((long)(o.h - 1) * wq + o.w + CSAC_VLEN - 1) / CSAC_VLEN) * CSAC_VLEN;
}

static int winograd_fits(const csac__conv *cv) {
    return cv->k == 3 && cv->stride[0] == 1 && cv->stride[1] == 1 && cv->stride[2] == 1;
}

static int winograd_auto(const csac__conv *cv, csac__shape in, csac__shape o) {
    if (!winograd_fits(cv)) return 0;
    /* With FMA (native), measured with AVX-512 (1 thread, best of 6
     * alternated forwards): Winograd wins at dilation 1 on planes from 8 x 8
     * (32^3 layers 5.2 -> 3.1 ms, 16^3 2.3 -> 1.9, 8^3 1.12 -> 0.95), direct
     * on the dilated lattices and on 4 x 4 (a 16-lane vector holds its 4
     * tiles). Before the tiles were packed, direct won everywhere.
     * Without FMA (wasm), compare lanes of multiplies per depth slice
     * and (ci, kd): Winograd 16 per tile lane plus ~15% for the transforms,
     * direct 9 per output-vector lane. Since tiles are packed into whole
     * vectors this picks Winograd for every stride-1 3x3 conv of the network
     * in wasm; it measured 1.2-2.2x faster than direct on each, 4^3 planes and
     * 8^3 at dilation 2 included (1.6-1.9x; before the packing, direct and
     * Winograd were level there). */
    if (CSAC_SIMD_FMA) return cv->dil == 1 && o.h >= 8 && o.w >= 8;
    long wl = (long)wgeom(cv, in).ntv * CSAC_VLEN;
    return 16 * wl * 115 < 9 * row_lanes(cv, in, o) * 100;
}

int csac__conv_algo(const csac__conv *cv, csac__shape in) {
    if (cv->algo == CSAC__CONV_DIRECT || cv->algo == CSAC__CONV_CHANVEC) return cv->algo;
    if (cv->algo == CSAC__CONV_WINOGRAD) return winograd_fits(cv) ? CSAC__CONV_WINOGRAD : CSAC__CONV_DIRECT;
    csac__shape o = csac__conv_out_shape(cv, in);
    if (winograd_auto(cv, in, o)) return CSAC__CONV_WINOGRAD;
    /* Channel vectors where the row kernel leaves lanes idle (planes narrower
     * than its vectors: 8 x 8 and 4 x 4 with 16 lanes), whole blocks of CVC
     * channels fill them and rows fill whole tiles. Only with 32 registers:
     * the tiles hold 24 accumulators. */
    if (CSAC_VLEN >= 16 && cv->cout % CVC == 0 && o.w % CHAN_NARROW == 0 && row_lanes(cv, in, o) * 100 > 110L * o.h * o.w)
        return CSAC__CONV_CHANVEC;
    return CSAC__CONV_DIRECT;
}

/* Per thread: a gathered plane, V of 3 depths, the tile table. */
static size_t wino_per_thread(const csac__conv *cv, csac__shape in) {
    wino_geom g = wgeom(cv, in);
    return round16((size_t)g.ps + CSAC__SLACK) + round16((size_t)g.ntb * 3 * 16 * cv->cin * NV * CSAC_VLEN) +
           round16((size_t)g.ntv * (3 * CSAC_VLEN + 1));
}

/* The output slice of rank i when slices are taken one depth phase (od mod
 * dil) after another: the three input slices of od are then those of the
 * previous od of the rank order plus one (kd = 0, 1, 2 are dil apart), so a
 * ring of 3 transformed slices serves any dilation (2 * dil + 1 in depth
 * order: 2.9 MB of V per thread at dilation 3 on 32^3, out of cache). */
static int wino_od(int i, int od_n, int dil) {
    for (int p = 0; p < dil; p++) {
        int n = (od_n - p + dil - 1) / dil;
        if (i < n) return p + i * dil;
        i -= n;
    }
    return -1;
}

/* The tiles in order (row phase, tile row, column phase, tile column), packed
 * CSAC_VLEN to a vector whatever rows and phases they come from: narrow
 * planes and dilated lattices fill whole vectors (a 4 x 4 plane is one
 * vector of 4 tiles rather than two half-empty ones). For each lane:
 * gathered-plane offset of its patch corner, first output row and column
 * (-1: a lane past the last tile); then per vector whether its lanes are
 * consecutive tiles of one row (read with vector loads). */
static void wino_tiles(const wino_geom *g, int oh, int ow, int *tab) {
    int *contig = tab + 3L * g->ntv * CSAC_VLEN, n = 0;
    for (int a = 0; a < g->dil; a++)
        for (int ti = 0; ti < wino_ti(oh, a, g->dil); ti++)
            for (int b = 0; b < g->dil; b++)
                for (int tj = 0; tj < wino_ti(ow, b, g->dil); tj++, n++) {
                    tab[3 * n] = (int)(((long)a * g->s + b) * g->hq * g->wq + (long)ti * g->wq + tj);
                    tab[3 * n + 1] = a + 2 * g->dil * ti;
                    tab[3 * n + 2] = b + 2 * g->dil * tj;
                }
    for (; n < g->ntv * CSAC_VLEN; n++) tab[3 * n] = 0, tab[3 * n + 1] = tab[3 * n + 2] = -1;
    for (int tv = 0; tv < g->ntv; tv++) {
        const int *t = tab + 3L * tv * CSAC_VLEN;
        contig[tv] = 1;
        for (int l = 1; l < CSAC_VLEN; l++)
            contig[tv] &= t[3 * l + 1] == t[1] && t[3 * l + 2] == t[2] + 2 * g->dil * l && t[3 * l] == t[0] + l;
    }
}

/* U[ceil(cout/CO)][xi][kd][cin][CO] = G g G^T of each 3x3 (kh, kw) slice. */
static void wino_pack(const float *w, int cin, int cout, float *packed) {
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    int ncot = (cout + CO - 1) / CO;
    for (int t = 0; t < ncot; t++)
        for (int ci = 0; ci < cin; ci++)
            for (int kd = 0; kd < 3; kd++)
                for (int c = 0; c < CO; c++) {
                    int co = t * CO + c;
                    double u[4][4] = {{0}}, gg[4][3];
                    if (co < cout) {
                        const float *g = w + (((size_t)co * cin + ci) * 3 + kd) * 9;
                        for (int i = 0; i < 4; i++)
                            for (int x = 0; x < 3; x++)
                                gg[i][x] = G[i][0] * g[x] + G[i][1] * g[3 + x] + G[i][2] * g[6 + x];
                        for (int i = 0; i < 4; i++)
                            for (int x = 0; x < 4; x++) u[i][x] = gg[i][0] * G[x][0] + gg[i][1] * G[x][1] + gg[i][2] * G[x][2];
                    }
                    for (int xi = 0; xi < 16; xi++)
                        packed[((((size_t)t * 16 + xi) * 3 + kd) * cin + ci) * CO + c] = (float)u[xi / 4][xi % 4];
                }
}

static int block_channels(int algo) { return algo == CSAC__CONV_CHANVEC ? CVC : CO; }

size_t csac__conv_packed_floats(const csac__conv *cv, csac__shape in) {
    int algo = csac__conv_algo(cv, in), cb = block_channels(algo);
    size_t ncot = (size_t)(cv->cout + cb - 1) / cb;
    if (algo == CSAC__CONV_WINOGRAD) return ncot * 16 * cv->cin * 3 * CO;
    return ncot * cv->cin * cv->k * cv->k * cv->k * cb;
}

void csac__conv_pack(const csac__conv *cv, csac__shape in, const float *w, float *packed) {
    int algo = csac__conv_algo(cv, in);
    if (algo == CSAC__CONV_WINOGRAD) wino_pack(w, cv->cin, cv->cout, packed);
    else direct_pack(w, cv->cin, cv->cout, cv->k, block_channels(algo), packed);
}

/* V = B^T d B of every tile vector of one gathered plane (tmp), written to
 * v + tb * stb + xi * sxi + (lanes of the vector within its block). */
static void wino_input(const wino_geom *g, const int *tab, const float *tmp, float *v, long sxi, long stb) {
    long off[16], pl = (long)g->hq * g->wq;
    for (int r = 0; r < 4; r++) /* patch element (r, c): phase (r & 1, c & 1) apart by dil, then (r >> 1, c >> 1) */
        for (int c = 0; c < 4; c++)
            off[r * 4 + c] = ((long)g->dil * (r & 1) * g->s + g->dil * (c & 1)) * pl + (long)(r >> 1) * g->wq + (c >> 1);
    const int *contig = tab + 3L * g->ntv * CSAC_VLEN;
    for (int tv = 0; tv < g->ntv; tv++) {
        const int *t = tab + 3L * tv * CSAC_VLEN;
        csac_vf d[4][4], e[4][4];
        if (contig[tv]) {
            const float *p = tmp + t[0];
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) d[r][c] = csac_vload(p + off[r * 4 + c]);
        } else { /* lanes from several rows or phases: element by element */
            float lane[16][CSAC_VLEN];
            for (int l = 0; l < CSAC_VLEN; l++)
                for (int q = 0; q < 16; q++) lane[q][l] = tmp[t[3 * l] + off[q]];
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) d[r][c] = csac_vload(lane[r * 4 + c]);
        }
        for (int r = 0; r < 4; r++) { /* d B */
            e[r][0] = csac_vsub(d[r][0], d[r][2]);
            e[r][1] = csac_vadd(d[r][1], d[r][2]);
            e[r][2] = csac_vsub(d[r][2], d[r][1]);
            e[r][3] = csac_vsub(d[r][1], d[r][3]);
        }
        float *dst = v + (long)(tv / NV) * stb + (long)(tv % NV) * CSAC_VLEN;
        for (int c = 0; c < 4; c++) { /* B^T (d B) */
            csac_vstore(dst + (0 * 4 + c) * sxi, csac_vsub(e[0][c], e[2][c]));
            csac_vstore(dst + (1 * 4 + c) * sxi, csac_vadd(e[1][c], e[2][c]));
            csac_vstore(dst + (2 * 4 + c) * sxi, csac_vsub(e[2][c], e[1][c]));
            csac_vstore(dst + (3 * 4 + c) * sxi, csac_vsub(e[1][c], e[3][c]));
        }
    }
}

/* What one tile block needs besides its vectors. */
typedef struct {
    const float *v;       /* V of this tile block                      */
    const float *u;       /* U of this channel block at the first valid kd */
    long sxi, koff[3];    /* V strides: xi, depth slot of each valid kd */
    int nkd, kd0;         /* valid kd: kd0 .. kd0 + nkd - 1            */
    int od, cot, tb;
    const int *tab;       /* wino_tiles                                */
    const int *contig;
} wino_ctx;

/* One block of nv (a constant after inlining) tile vectors x CO channels:
 * the 16 GEMMs over (valid kd, ci), the output transform, the epilogue. */
static inline __attribute__((always_inline)) void wino_block(const conv_job *j, const wino_ctx *x, const int nv) {
    const csac__conv *cv = j->cv;
    const wino_geom *g = &j->wg;
    int cin = cv->cin, OH = j->osh.h, OW = j->osh.w, dil = g->dil;
    csac_vf m[16][CO][NV];
    for (int xi = 0; xi < 16; xi++) {
        csac_vf acc[CO][NV];
        for (int c = 0; c < CO; c++)
            for (int v = 0; v < nv; v++) acc[c][v] = csac_vzero();
        /* sum over the valid kd, then ci: both V and U are read in order */
        for (int q = 0; q < x->nkd; q++) {
            const float *vp = x->v + x->koff[q] + xi * x->sxi, *up = x->u + ((size_t)xi * 3 + q) * cin * CO;
            for (int ci = 0; ci < cin; ci++, vp += NV * CSAC_VLEN, up += CO) {
                csac_vf xv[NV];
                for (int v = 0; v < nv; v++) xv[v] = csac_vload(vp + v * CSAC_VLEN);
                for (int c = 0; c < CO; c++) {
                    csac_vf wv = csac_vset1(up[c]);
                    for (int v = 0; v < nv; v++) acc[c][v] = csac_vmadd(acc[c][v], xv[v], wv);
                }
            }
        }
        for (int c = 0; c < CO; c++)
            for (int v = 0; v < nv; v++) m[xi][c][v] = acc[c][v];
    }
    csac_vf z = csac_vzero();
    for (int v = 0; v < nv; v++) {
        int tv = x->tb * NV + v;
        const int *t = x->tab + 3L * tv * CSAC_VLEN;
        int oh0 = t[1], ow0 = t[2];
        for (int c = 0; c < CO; c++) {
            int co = x->cot * CO + c;
            if (co >= cv->cout) break;
            csac_vf t0[4], t1[4], y[2][2];
            for (int q = 0; q < 4; q++) { /* A^T M */
                t0[q] = csac_vadd(csac_vadd(m[q][c][v], m[4 + q][c][v]), m[8 + q][c][v]);
                t1[q] = csac_vsub(csac_vsub(m[4 + q][c][v], m[8 + q][c][v]), m[12 + q][c][v]);
            }
            y[0][0] = csac_vadd(csac_vadd(t0[0], t0[1]), t0[2]); /* (A^T M) A */
            y[0][1] = csac_vsub(csac_vsub(t0[1], t0[2]), t0[3]);
            y[1][0] = csac_vadd(csac_vadd(t1[0], t1[1]), t1[2]);
            y[1][1] = csac_vsub(csac_vsub(t1[1], t1[2]), t1[3]);
            float bias = cv->b ? cv->b[co] : 0.0f;
            csac_vf vb = csac_vset1(bias);
            long base = ((long)co * j->osh.d + x->od) * OH * OW;
            if (dil == 1 && x->contig[tv] && ow0 + 2 * CSAC_VLEN <= OW) { /* whole rows: interleave the tiles' two columns */
                for (int e = 0; e < 2 && oh0 + e < OH; e++) {
                    long o = base + (long)(oh0 + e) * OW + ow0;
                    csac_vf r0 = csac_vadd(csac_vzip_lo(y[e][0], y[e][1]), vb);
                    csac_vf r1 = csac_vadd(csac_vzip_hi(y[e][0], y[e][1]), vb);
                    if (j->res) {
                        r0 = csac_vadd(r0, csac_vload(j->res + o));
                        r1 = csac_vadd(r1, csac_vload(j->res + o + CSAC_VLEN));
                    }
                    if (j->relu) {
                        r0 = csac_vmax(r0, z);
                        r1 = csac_vmax(r1, z);
                    }
                    csac_vstore(j->out + o, r0);
                    csac_vstore(j->out + o + CSAC_VLEN, r1);
                }
                continue;
            }
            /* lattice phases (outputs dil apart), row ends, packed tiles:
             * output by output, bias (and ReLU without a residual) added as
             * vectors first */
            float lane[2][2][CSAC_VLEN];
            for (int e = 0; e < 2; e++)
                for (int f = 0; f < 2; f++) {
                    csac_vf r = csac_vadd(y[e][f], vb);
                    csac_vstore(lane[e][f], j->relu && !j->res ? csac_vmax(r, z) : r);
                }
            for (int l = 0; l < CSAC_VLEN && t[3 * l + 1] >= 0; l++)
                for (int e = 0; e < 2; e++) {
                    int oh = t[3 * l + 1] + dil * e;
                    if (oh >= OH) break;
                    for (int f = 0; f < 2; f++) {
                        int ow = t[3 * l + 2] + dil * f;
                        if (ow >= OW) break;
                        long o = base + (long)oh * OW + ow;
                        float r = lane[e][f][l];
                        if (j->res) {
                            r += j->res[o];
                            if (j->relu) r = r > 0.0f ? r : 0.0f;
                        }
                        j->out[o] = r;
                    }
                }
        }
    }
}

static void wino_task(void *arg, int ith, int nth) {
    (void)nth; /* the shares were sized for the pool in csac__conv3d */
    conv_job *j = arg;
    const csac__conv *cv = j->cv;
    const wino_geom *g = &j->wg;
    int cin = cv->cin, dil = cv->dil, ncot = (cv->cout + CO - 1) / CO;
    long lo, hi;
    /* V[tile block][slot][xi][ci][NV vectors]: the three input depths of the
     * current output slice, each gathered (a plane at a time) and transformed
     * once, when the slices reach it; small enough to stay in this core's
     * cache. Units are (rank of od in wino_od's order, channel block). */
    long nvv = (long)NV * CSAC_VLEN, sxi = cin * nvv, sd = 16 * sxi, stb = 3 * sd;
    float *tmp = j->gather + (size_t)ith * j->gather_stride;
    float *vbuf = tmp + round16((size_t)g->ps + CSAC__SLACK);
    int *tab = (int *)(vbuf + round16((size_t)g->ntb * stb));
    int tabbed = 0, have_r = -1, qnext = 0;
    long rank_prev = -1;
    while (claim(j, ith, &lo, &hi)) {
        if (!tabbed) {
            wino_tiles(g, j->osh.h, j->osh.w, tab);
            tabbed = 1;
        }
        if (lo / ncot < rank_prev) have_r = -1; /* a chunk taken from behind: restart the ring */
        rank_prev = (hi - 1) / ncot;
        /* per output slice and tile block, every channel block of this thread's
         * units: the block's V stays in cache while U changes */
        for (long rank = lo / ncot; rank <= (hi - 1) / ncot; rank++) {
            int od = wino_od((int)rank, j->osh.d, dil);
            /* input depth id = q * dil + r of kd = 0, 1, 2: q = q0, q0 + 1, q0 + 2; slot q % 3 */
            int r = ((od - cv->pad) % dil + dil) % dil, q0 = (od - cv->pad - r) / dil;
            if (r != have_r) have_r = r, qnext = q0; /* a new phase: its slices are not in the ring */
            if (qnext < q0) qnext = q0;              /* after a gap: skip slices no unit here reads */
            for (; qnext <= q0 + 2; qnext++) {
                int id = qnext * dil + r;
                if (id < 0 || id >= j->ish.d) continue;
                for (int ci = 0; ci < cin; ci++) {
                    gather_plane(j, ci, id, tmp, g->s, g->s, g->hq, g->wq);
                    wino_input(g, tab, tmp, vbuf + (qnext % 3) * sd + ci * nvv, sxi, stb);
                }
            }
            long c0 = rank * ncot < lo ? lo - rank * ncot : 0, c1 = (rank + 1) * ncot > hi ? hi - rank * ncot : ncot;
            wino_ctx x;
            x.od = od;
            x.nkd = x.kd0 = 0;
            for (int kd = 0; kd < 3; kd++) { /* valid kd: a contiguous range */
                int id = (q0 + kd) * dil + r;
                if (id < 0 || id >= j->ish.d) continue;
                if (!x.nkd) x.kd0 = kd;
                x.koff[x.nkd++] = ((q0 + kd) % 3) * sd;
            }
            x.sxi = sxi;
            x.tab = tab;
            x.contig = tab + 3L * g->ntv * CSAC_VLEN;
            for (x.tb = 0; x.tb < g->ntb; x.tb++) {
                x.v = vbuf + x.tb * stb;
                for (x.cot = (int)c0; x.cot < c1; x.cot++) {
                    x.u = cv->w + ((size_t)x.cot * 16 * 3 + (x.nkd ? x.kd0 : 0)) * cin * CO;
                    switch (g->ntv - x.tb * NV) { /* vectors in this block: a constant per instance */
                    case 1: wino_block(j, &x, 1); break;
    #if NV >= 3
                    case 2: wino_block(j, &x, 2); break;
    #endif
    #if NV >= 4
                    case 3: wino_block(j, &x, 3); break;
    #endif
                    default: wino_block(j, &x, NV); break;
                    }
                }
            }
        }
    }
}

void csac__conv3d(csac_pool *pool, const csac__conv *cv, const float *in, csac__shape ish, float *out,
                  const float *res, int relu, float *gather) {
    conv_job j;
    j.cv = cv;
    j.in = in;
    j.ish = ish;
    j.osh = csac__conv_out_shape(cv, ish);
    j.g = geom(cv, ish);
    j.out = out;
    j.gather = gather;
    j.gather_stride = gather_per_thread(cv, ish);
    j.res = res;
    j.relu = relu;
    int algo = csac__conv_algo(cv, ish);
    j.cb = block_channels(algo);
    shares_init(&j, (long)j.osh.d * ((cv->cout + j.cb - 1) / j.cb), csac_pool_size(pool));
    if (algo == CSAC__CONV_WINOGRAD) {
        j.wg = wgeom(cv, ish);
        csac_pool_run(pool, wino_task, &j);
    } else {
        csac_pool_run(pool, algo == CSAC__CONV_CHANVEC ? chan_task : conv_task, &j);
    }
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
 * max over each run of k columns (k = 2: both in registers). Split by depth
 * like the convs, so a thread pools the slices it computed. */
static void maxpool_task(void *arg, int ith, int nth) {
    const pool_job *j = arg;
    int k = j->k, W = j->ish.w, ow_n = j->osh.w;
    long lo, hi, ihw = (long)j->ish.h * W;
    float row[1024];
    csac_split((long)j->osh.c * j->osh.d, ith, nth, &lo, &hi);
    for (long u = lo; u < hi; u++) {
        int c = (int)(u % j->osh.c), od = (int)(u / j->osh.c);
        float *o = j->out + ((long)c * j->osh.d + od) * j->osh.h * ow_n;
        const float *base = j->in + ((long)c * j->ish.d + (long)od * k) * ihw;
        int n = ow_n * k; /* input columns used */
        for (int oh = 0; oh < j->osh.h; oh++) {
            if (k == 2) {
                const float *r0 = base + (long)oh * 2 * W, *r1 = r0 + W, *r2 = r0 + ihw, *r3 = r2 + W;
                float *orow = o + (long)oh * ow_n;
                int x = 0;
                for (; x + CSAC_VLEN <= ow_n; x += CSAC_VLEN) {
                    int i = 2 * x, i2 = i + CSAC_VLEN;
                    csac_vf a = csac_vmax(csac_vmax(csac_vmax(csac_vload(r0 + i), csac_vload(r1 + i)), csac_vload(r2 + i)),
                                          csac_vload(r3 + i));
                    csac_vf b = csac_vmax(csac_vmax(csac_vmax(csac_vload(r0 + i2), csac_vload(r1 + i2)), csac_vload(r2 + i2)),
                                          csac_vload(r3 + i2));
                    csac_vstore(orow + x, csac_vmax_pairs(a, b));
                }
                for (; x < ow_n; x++) {
                    float m = r0[2 * x];
                    const float *rs[4] = {r0, r1, r2, r3};
                    for (int q = 0; q < 4; q++)
                        for (int e = 0; e < 2; e++) m = rs[q][2 * x + e] > m ? rs[q][2 * x + e] : m;
                    orow[x] = m;
                }
                continue;
            }
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
