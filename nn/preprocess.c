/* preprocess.c - from a volume in HU to the 64 x 128 x 128 model grid
 * (DESIGN.md "Model grid v1").
 *
 * At read time (csac__volume_analyse):
 *   1. box decimation: per source axis an integer factor
 *      f = max(1, floor(target spacing / source spacing)) (5 mm for the axis
 *      closest to world z, 2.8 mm for the others). Averaging f voxels is the
 *      anti-aliasing filter and the shrink in one O(N) pass.
 *   2. centring on the decimated volume: per slice, air (< -400 HU) that is
 *      not connected to the slice border is enclosed air; its 3D components
 *      of at least a tenth of the largest (>= 250 mL) are the lungs (this drops
 *      bowel gas and air in the table). The grid centre is the middle of the
 *      lungs' bounding box over the slices where they are at least a tenth of
 *      their largest cross-section (drops the trachea). No lungs: centroid of
 *      the body (everything not connected to the outside air).
 *   3. patient size: the lungs' volume with holes filled per slice (vessels,
 *      dense lesions inside them) sets the grid zoom, so that small and large
 *      lungs fill the grid alike (csac.h CSAC_GRID_REF_LUNG_ML).
 * csac_preprocess then samples the decimated volume trilinearly at every
 * model-grid voxel through world coordinates (any orientation, LPS/RAS or
 * oblique, in one step), pads with -1000 HU and applies the HU window.
 * Every loop has a fixed order per output value: results do not depend on
 * the number of threads. */
#include "volume.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { AIR_HU = -400 };
#define LUNG_MIN_ML 250.0
#define LUNG_MIN_SLICE_FRAC 0.1
#define LUNG_MIN_COMPONENT_FRAC 0.1

/* ------------------------------------------------------------------ */
/* 1. box decimation                                                     */

typedef struct {
    const float *src;
    float *dst;
    int64_t sd[3], dd[3];
    int f[3], o[3];
} decim_job;

/* Source voxels [lo, hi) of box I along an axis of n voxels. */
static int64_t box_lo(int64_t I, int f, int o) { int64_t v = I * f - o; return v > 0 ? v : 0; }
static int64_t box_hi(int64_t I, int f, int o, int64_t n) { int64_t v = (I + 1) * f - o; return v < n ? v : n; }

static void decim_task(void *arg, int ith, int nth) {
    decim_job *J = arg;
    long lo, hi;
    csac_split((long)J->dd[2], ith, nth, &lo, &hi);
    const int64_t sd0 = J->sd[0], sd1 = J->sd[1], dd0 = J->dd[0], dd1 = J->dd[1];
    const int f0 = J->f[0], f1 = J->f[1], f2 = J->f[2], o0 = J->o[0], o1 = J->o[1], o2 = J->o[2];
    const int64_t head = o0 ? (f0 - o0 < sd0 ? f0 - o0 : sd0) : 0; /* voxels of a partial first box */
    for (long K = lo; K < hi; K++) {
        float *out = J->dst + (size_t)K * (size_t)(dd0 * dd1);
        memset(out, 0, sizeof(float) * (size_t)(dd0 * dd1));
        int64_t k0 = box_lo(K, f2, o2), k1 = box_hi(K, f2, o2, J->sd[2]);
        for (int64_t k = k0; k < k1; k++)
            for (int64_t j = 0; j < sd1; j++) {
                const float *row = J->src + (size_t)(k * sd1 + j) * (size_t)sd0;
                float *orow = out + (size_t)((j + o1) / f1) * (size_t)dd0;
                int64_t i = 0, I = 0;
                if (head) {
                    float s = 0;
                    for (; i < head; i++) s += row[i];
                    orow[0] += s;
                    I = 1;
                }
                const float *r = row + i;
                float *o = orow + I;
                int64_t full = (sd0 - i) / f0, b = 0;
                switch (f0) { /* fixed trip counts unroll; the general case is rare */
                case 1: for (; b < full; b++) o[b] += r[b]; break;
                case 2: for (; b < full; b++) o[b] += r[2 * b] + r[2 * b + 1]; break;
                case 3: for (; b < full; b++) o[b] += r[3 * b] + r[3 * b + 1] + r[3 * b + 2]; break;
                case 4: for (; b < full; b++) o[b] += (r[4 * b] + r[4 * b + 1]) + (r[4 * b + 2] + r[4 * b + 3]); break;
                default:
                    for (; b < full; b++) {
                        float s = 0;
                        for (int t = 0; t < f0; t++) s += r[b * f0 + t];
                        o[b] += s;
                    }
                }
                i += full * f0;
                I += full;
                if (i < sd0) { /* partial last box */
                    float s = 0;
                    for (; i < sd0; i++) s += row[i];
                    orow[I] += s;
                }
            }
        /* mean: edge boxes hold fewer voxels */
        int64_t nk = k1 - k0;
        for (int64_t J1 = 0; J1 < dd1; J1++) {
            int64_t nj = box_hi(J1, f1, o1, sd1) - box_lo(J1, f1, o1);
            for (int64_t I = 0; I < dd0; I++) {
                int64_t ni = box_hi(I, f0, o0, sd0) - box_lo(I, f0, o0);
                out[J1 * dd0 + I] /= (float)(ni * nj * nk);
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* 2. centring                                                           */

enum { M_NONE = 0, M_OUTSIDE = 1, M_ENCLOSED = 2, M_SEEN = 3, M_LUNG = 4 };

typedef struct {
    int64_t n[3];   /* decimated dims */
    size_t st[3];   /* strides        */
} dgeom;

/* Slices along axis c are independent: threads take contiguous runs of them,
 * each with its own queue (na*nb entries). */
typedef struct {
    const float *v;
    uint8_t *m;
    const dgeom *g;
    int c;
    uint32_t *queues;
    size_t *count; /* NULL: mark outside air; else filled lung voxels per slice */
} slice_job;

/* 4-connected flood of slice s from its border. Marking outside air: over
 * air not yet marked, which becomes M_OUTSIDE; filling the lungs: over
 * everything but M_LUNG, marked with bit 0x80. Returns the voxels reached;
 * queue holds them. */
static size_t flood_slice(const slice_job *J, int64_t s, uint32_t *queue) {
    const int fill = J->count != NULL;
    const float *v = J->v;
    uint8_t *m = J->m;
    const dgeom *g = J->g;
    int c = J->c, a = c == 0 ? 1 : 0, b = c == 2 ? 1 : 2;
    int64_t na = g->n[a], nb = g->n[b];
    size_t base = (size_t)s * g->st[c], qh = 0, qt = 0;
#define OPEN(x) (fill ? m[x] != M_LUNG && !(m[x] & 0x80) : v[x] < AIR_HU && m[x] == M_NONE)
#define MARK(x) (m[x] = fill ? (uint8_t)(m[x] | 0x80) : (uint8_t)M_OUTSIDE)
    for (int64_t u = 0; u < na; u++)
        for (int64_t w = 0; w < nb; w++) {
            if (u != 0 && u != na - 1 && w != 0 && w != nb - 1) continue;
            size_t x = base + (size_t)u * g->st[a] + (size_t)w * g->st[b];
            if (OPEN(x)) { MARK(x); queue[qt++] = (uint32_t)(u * nb + w); }
        }
    while (qh < qt) {
        uint32_t q = queue[qh++];
        int64_t u = q / nb, w = q % nb;
        int64_t nu[4] = {u - 1, u + 1, u, u}, nw[4] = {w, w, w - 1, w + 1};
        for (int e = 0; e < 4; e++) {
            if (nu[e] < 0 || nu[e] >= na || nw[e] < 0 || nw[e] >= nb) continue;
            size_t x = base + (size_t)nu[e] * g->st[a] + (size_t)nw[e] * g->st[b];
            if (OPEN(x)) { MARK(x); queue[qt++] = (uint32_t)(nu[e] * nb + nw[e]); }
        }
    }
#undef OPEN
#undef MARK
    return qt;
}

/* 3D flood of enclosed air from seed, relabelling from -> to; returns the
 * size. 32-bit index arithmetic: the caller checked N < 2^32. 'from' voxels
 * (enclosed air and what it became) never lie on their slice's border, where
 * slice_task marked all air outside, so only the neighbours along the
 * slice axis c need a range check. */
static size_t flood3d(uint8_t *m, const dgeom *g, int c, uint32_t seed, uint8_t from, uint8_t to, uint32_t *queue) {
    const uint32_t st[3] = {(uint32_t)g->st[0], (uint32_t)g->st[1], (uint32_t)g->st[2]};
    const uint32_t sc = st[c], nc = (uint32_t)g->n[c], a = st[c == 0 ? 1 : 0], b = st[c == 2 ? 1 : 2];
    const uint32_t N = sc * nc; /* c == 2: the whole volume */
    size_t qh = 0, qt = 0;
    m[seed] = to;
    queue[qt++] = seed;
    while (qh < qt) {
        uint32_t x = queue[qh++];
        uint32_t kc = c == 2 ? 0 : (x / sc) % nc; /* position along c (c == 2: compare x itself) */
#define VISIT(y) do { uint32_t y_ = (y); if (m[y_] == from) { m[y_] = to; queue[qt++] = y_; } } while (0)
        VISIT(x - a);
        VISIT(x + a);
        VISIT(x - b);
        VISIT(x + b);
        if (c == 2 ? x >= sc : kc > 0) VISIT(x - sc);
        if (c == 2 ? x + sc < N : kc + 1 < nc) VISIT(x + sc);
#undef VISIT
    }
    return qt;
}

/* Per slice along c (J->count NULL): the air reached from the slice border
 * is M_OUTSIDE, the remaining air M_ENCLOSED. Or (J->count set, after the
 * lungs are labelled): the lungs with their holes (vessels, dense lesions)
 * filled, i.e. a slice's voxels minus those reached from its border without
 * crossing M_LUNG (bit 0x80, cleared after); the caller sums the per-slice
 * counts in slice order. */
static void slice_task(void *arg, int ith, int nth) {
    const slice_job *J = arg;
    uint8_t *m = J->m;
    const dgeom *g = J->g;
    int c = J->c, a = c == 0 ? 1 : 0, b = c == 2 ? 1 : 2;
    int64_t na = g->n[a], nb = g->n[b];
    uint32_t *queue = J->queues + (size_t)ith * (size_t)(na * nb);
    long lo, hi;
    csac_split((long)g->n[c], ith, nth, &lo, &hi);
    for (int64_t s = lo; s < hi; s++) {
        size_t base = (size_t)s * g->st[c];
#define AT(u, w) (base + (size_t)(u) * g->st[a] + (size_t)(w) * g->st[b])
        if (!J->count) {
            flood_slice(J, s, queue);
            for (int64_t u = 0; u < na; u++)
                for (int64_t w = 0; w < nb; w++)
                    if (J->v[AT(u, w)] < AIR_HU && m[AT(u, w)] == M_NONE) m[AT(u, w)] = M_ENCLOSED;
            continue;
        }
        size_t lung = 0;
        for (int64_t u = 0; u < na; u++)
            for (int64_t w = 0; w < nb; w++) lung += m[AT(u, w)] == M_LUNG;
        J->count[s] = 0;
        if (!lung) continue;
        size_t qt = flood_slice(J, s, queue);
        J->count[s] = (size_t)(na * nb) - qt;
        for (size_t q = 0; q < qt; q++) m[AT(queue[q] / nb, queue[q] % nb)] &= 0x7f;
#undef AT
    }
}

static void dec_world(const csac_volume *vol, double i, double j, double k, double w[3]) {
    const double(*A)[4] = vol->dec2world;
    for (int r = 0; r < 3; r++) w[r] = A[r][0] * i + A[r][1] * j + A[r][2] * k + A[r][3];
}

static int find_centre(csac_ctx *ctx, csac_volume *vol) {
    dgeom g;
    for (int a = 0; a < 3; a++) g.n[a] = vol->dec_dim[a];
    g.st[0] = 1;
    g.st[1] = (size_t)g.n[0];
    g.st[2] = (size_t)(g.n[0] * g.n[1]);
    size_t N = (size_t)(g.n[0] * g.n[1] * g.n[2]);
    if (N >= UINT32_MAX) return csac__fail(ctx, CSAC_E_LIMIT, "decimated volume of %zu voxels is too large to analyse", N);
    int nth = csac_pool_size(ctx->pool);
    size_t slice = (size_t)(N / (size_t)g.n[vol->slice_axis]);
    uint8_t *m = calloc(N, 1);
    /* the 3D floods need N entries; the per-slice floods one slice per thread */
    uint32_t *queue = malloc(sizeof(uint32_t) * (N > slice * (size_t)nth ? N : slice * (size_t)nth));
    if (!m || !queue) {
        free(m); free(queue);
        return csac__fail(ctx, CSAC_E_NOMEM, "out of memory analysing the volume");
    }
    const float *v = vol->dec;
    int c = vol->slice_axis;
    slice_job sj = {v, m, &g, c, queue, NULL};
    csac_pool_run(ctx->pool, slice_task, &sj);

    double vox_ml = 1e-3;
    for (int a = 0; a < 3; a++) vox_ml *= vol->info.spacing[a] * vol->dec_f[a];
    /* enclosed-air components: sizes first, then keep the big ones */
    size_t largest = 0, nseeds = 0, capseeds = 64;
    uint32_t *seeds = malloc(capseeds * sizeof *seeds);
    size_t *sizes = malloc(capseeds * sizeof *sizes);
    for (size_t x = 0; x < N && seeds && sizes; x++)
        if (m[x] == M_ENCLOSED) {
            size_t sz = flood3d(m, &g, c, (uint32_t)x, M_ENCLOSED, M_SEEN, queue);
            if (sz > largest) largest = sz;
            if (nseeds == capseeds) {
                capseeds *= 2;
                uint32_t *ns = realloc(seeds, capseeds * sizeof *seeds);
                size_t *nz = ns ? realloc(sizes, capseeds * sizeof *sizes) : NULL;
                if (ns) seeds = ns;
                if (nz) sizes = nz;
                if (!ns || !nz) { free(seeds); seeds = NULL; break; }
            }
            seeds[nseeds] = (uint32_t)x;
            sizes[nseeds++] = sz;
        }
    if (!seeds || !sizes) {
        free(seeds); free(sizes); free(m); free(queue);
        return csac__fail(ctx, CSAC_E_NOMEM, "out of memory analysing the volume");
    }
    vol->lungs_found = 0;
    vol->info.lung_ml = 0;
    vol->info.grid_zoom = 1;
    if ((double)largest * vox_ml >= LUNG_MIN_ML) {
        size_t keep = (size_t)ceil(LUNG_MIN_COMPONENT_FRAC * (double)largest);
        for (size_t q = 0; q < nseeds; q++)
            if (sizes[q] >= keep) flood3d(m, &g, c, seeds[q], M_SEEN, M_LUNG, queue);
        /* cross-section of the lungs per slice along c */
        int64_t ns = g.n[c];
        size_t *area = calloc((size_t)ns, sizeof(size_t));
        if (!area) {
            free(seeds); free(sizes); free(m); free(queue);
            return csac__fail(ctx, CSAC_E_NOMEM, "out of memory analysing the volume");
        }
        size_t amax = 0, x = 0;
        int64_t idx[3];
        for (idx[2] = 0; idx[2] < g.n[2]; idx[2]++)
            for (idx[1] = 0; idx[1] < g.n[1]; idx[1]++)
                for (idx[0] = 0; idx[0] < g.n[0]; idx[0]++, x++)
                    if (m[x] == M_LUNG) area[idx[c]]++;
        for (int64_t s = 0; s < ns; s++) if (area[s] > amax) amax = area[s];
        double lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
        x = 0;
        for (idx[2] = 0; idx[2] < g.n[2]; idx[2]++)
            for (idx[1] = 0; idx[1] < g.n[1]; idx[1]++)
                for (idx[0] = 0; idx[0] < g.n[0]; idx[0]++, x++) {
                    if (m[x] != M_LUNG || (double)area[idx[c]] < LUNG_MIN_SLICE_FRAC * (double)amax) continue;
                    double w[3];
                    dec_world(vol, (double)idx[0], (double)idx[1], (double)idx[2], w);
                    for (int r = 0; r < 3; r++) { if (w[r] < lo[r]) lo[r] = w[r]; if (w[r] > hi[r]) hi[r] = w[r]; }
                }
        free(area);
        for (int r = 0; r < 3; r++) vol->centre_world[r] = 0.5 * (lo[r] + hi[r]);
        vol->lungs_found = 1;
        size_t *count = calloc((size_t)g.n[c], sizeof(size_t)), filled = 0;
        if (!count) {
            free(seeds); free(sizes); free(m); free(queue);
            return csac__fail(ctx, CSAC_E_NOMEM, "out of memory analysing the volume");
        }
        sj.count = count;
        csac_pool_run(ctx->pool, slice_task, &sj);
        for (int64_t s = 0; s < g.n[c]; s++) filled += count[s];
        free(count);
        double ml = (double)filled * vox_ml;
        double z = cbrt(CSAC_GRID_REF_LUNG_ML / ml);
        vol->info.lung_ml = ml;
        vol->info.grid_zoom = z < CSAC_GRID_ZOOM_MIN ? CSAC_GRID_ZOOM_MIN : z > CSAC_GRID_ZOOM_MAX ? CSAC_GRID_ZOOM_MAX : z;
        if (z != vol->info.grid_zoom)
            csac__volume_warn(vol, "lungs of %.0f mL are %s than the model was trained on: the grid is zoomed by %.2f, not %.2f",
                              ml, z > 1 ? "smaller" : "larger", vol->info.grid_zoom, z);
    } else {
        double sum[3] = {0, 0, 0};
        size_t cnt = 0;
        for (int64_t k = 0; k < g.n[2]; k++)
            for (int64_t j = 0; j < g.n[1]; j++)
                for (int64_t i = 0; i < g.n[0]; i++) {
                    size_t x = (size_t)i + (size_t)j * g.st[1] + (size_t)k * g.st[2];
                    if (m[x] == M_OUTSIDE) continue;
                    sum[0] += (double)i; sum[1] += (double)j; sum[2] += (double)k;
                    cnt++;
                }
        double ci[3];
        for (int a = 0; a < 3; a++) ci[a] = cnt ? sum[a] / (double)cnt : 0.5 * (double)(g.n[a] - 1);
        dec_world(vol, ci[0], ci[1], ci[2], vol->centre_world);
        csac__volume_warn(vol, cnt ? "no lungs found (no enclosed air region of %.0f mL or more): the model grid is centred on the body"
                                   : "no lungs found (no enclosed air region of %.0f mL or more) and no body: the model grid is centred on the volume",
                          LUNG_MIN_ML);
    }
    free(seeds);
    free(sizes);
    free(m);
    free(queue);
    return CSAC_OK;
}

int csac__volume_analyse(csac_ctx *ctx, csac_volume *vol) {
    double t0 = csac__now_ms();
    const csac_volume_info *in = &vol->info;
    size_t n = 1;
    for (int a = 0; a < 3; a++) {
        double target = a == vol->slice_axis ? CSAC_GRID_DZ_MM : CSAC_GRID_DXY_MM;
        int64_t f = (int64_t)floor(target / in->spacing[a] + 1e-6);
        if (f < 1) f = 1;
        if (f > in->dim[a]) f = in->dim[a];
        /* Anchor the boxes at the same anatomical end of the axis whatever
         * the storage order (LPS, RAS, flipped slices): the same scan stored
         * mirrored then decimates to the mirrored volume and the same grid.
         * An axis pointing to world -x/-y/-z (RAS+) gets its partial box
         * first. */
        int r = 0;
        for (int w = 1; w < 3; w++)
            if (fabs(in->vox2world[w][a]) > fabs(in->vox2world[r][a])) r = w;
        int64_t rem = in->dim[a] % f;
        vol->dec_f[a] = (int)f;
        vol->dec_off[a] = in->vox2world[r][a] < 0 && rem ? (int)(f - rem) : 0;
        vol->dec_dim[a] = (in->dim[a] + vol->dec_off[a] + f - 1) / f;
        n *= (size_t)vol->dec_dim[a];
    }
    vol->dec = malloc(n * sizeof(float));
    if (!vol->dec) return csac__fail(ctx, CSAC_E_NOMEM, "out of memory for the decimated volume (%zu voxels)", n);
    decim_job J = {.src = vol->data, .dst = vol->dec};
    for (int a = 0; a < 3; a++) { J.sd[a] = in->dim[a]; J.dd[a] = vol->dec_dim[a]; J.f[a] = vol->dec_f[a]; J.o[a] = vol->dec_off[a]; }
    csac_pool_run(ctx->pool, decim_task, &J);

    /* dec voxel I is centred on original voxel f*I - off + (f-1)/2 */
    double S[4][4] = {{0}};
    for (int a = 0; a < 3; a++) { S[a][a] = vol->dec_f[a]; S[a][3] = 0.5 * (vol->dec_f[a] - 1) - vol->dec_off[a]; }
    S[3][3] = 1;
    csac__mat44_mul(in->vox2world, S, vol->dec2world);
    if (!csac__mat44_inverse(vol->dec2world, vol->world2dec))
        return csac__fail(ctx, CSAC_E_FORMAT, "singular voxel-to-world transform");
    int st = find_centre(ctx, vol);
    vol->ms_analyse = csac__now_ms() - t0;
    return st;
}

/* ------------------------------------------------------------------ */
/* 3. sampling to the model grid                                        */

typedef struct {
    const csac_volume *vol;
    double g2d[4][4]; /* model grid (w,h,d) -> decimated index */
    float *out;
} sample_job;

static void sample_task(void *arg, int ith, int nth) {
    const sample_job *S = arg;
    const csac_volume *vol = S->vol;
    const float *v = vol->dec;
    const int64_t n0 = vol->dec_dim[0], n1 = vol->dec_dim[1], n2 = vol->dec_dim[2];
    const float scale = 1.0f / (CSAC_HU_HI - CSAC_HU_LO);
    long lo, hi;
    csac_split(CSAC_GRID_D * CSAC_GRID_H, ith, nth, &lo, &hi);
    for (long row = lo; row < hi; row++) {
        int d = (int)(row / CSAC_GRID_H), h = (int)(row % CSAC_GRID_H);
        float *o = S->out + (size_t)row * CSAC_GRID_W;
        for (int w = 0; w < CSAC_GRID_W; w++) {
            double p[3];
            for (int r = 0; r < 3; r++) p[r] = S->g2d[r][0] * w + S->g2d[r][1] * h + S->g2d[r][2] * d + S->g2d[r][3];
            float hu;
            /* inside the scanned voxels (half a voxel past the edge centres) */
            if (p[0] < -0.5 || p[0] > (double)n0 - 0.5 || p[1] < -0.5 || p[1] > (double)n1 - 0.5 ||
                p[2] < -0.5 || p[2] > (double)n2 - 0.5) {
                hu = CSAC_HU_PAD;
            } else {
                int64_t i0[3], i1[3];
                double t[3];
                const int64_t nn[3] = {n0, n1, n2};
                for (int r = 0; r < 3; r++) {
                    double q = p[r] < 0 ? 0 : p[r] > (double)(nn[r] - 1) ? (double)(nn[r] - 1) : p[r];
                    i0[r] = (int64_t)q;
                    if (i0[r] > nn[r] - 1) i0[r] = nn[r] - 1;
                    t[r] = q - (double)i0[r];
                    i1[r] = i0[r] + 1 < nn[r] ? i0[r] + 1 : i0[r];
                }
                const size_t s1 = (size_t)n0, s2 = (size_t)(n0 * n1);
#define V(a, b, c) v[(size_t)(a) + (size_t)(b) * s1 + (size_t)(c) * s2]
                double c00 = V(i0[0], i0[1], i0[2]) * (1 - t[0]) + V(i1[0], i0[1], i0[2]) * t[0];
                double c10 = V(i0[0], i1[1], i0[2]) * (1 - t[0]) + V(i1[0], i1[1], i0[2]) * t[0];
                double c01 = V(i0[0], i0[1], i1[2]) * (1 - t[0]) + V(i1[0], i0[1], i1[2]) * t[0];
                double c11 = V(i0[0], i1[1], i1[2]) * (1 - t[0]) + V(i1[0], i1[1], i1[2]) * t[0];
#undef V
                double c0 = c00 * (1 - t[1]) + c10 * t[1], c1 = c01 * (1 - t[1]) + c11 * t[1];
                hu = (float)(c0 * (1 - t[2]) + c1 * t[2]);
            }
            float x = hu < CSAC_HU_LO ? CSAC_HU_LO : hu > CSAC_HU_HI ? CSAC_HU_HI : hu;
            o[w] = (x - CSAC_HU_LO) * scale;
        }
    }
}

int csac_preprocess(csac_ctx *ctx, const csac_volume *vol, float *out, csac_grid *grid) {
    if (!ctx || !vol || !out) return csac__fail(ctx, CSAC_E_ARG, "csac_preprocess: NULL argument");
    if (!vol->dec) return csac__fail(ctx, CSAC_E_STATE, "csac_preprocess: the volume was not analysed");
    /* w: patient right -> left (x decreasing), h: anterior -> posterior
     * (y decreasing), d: inferior -> superior (z increasing); the grid's
     * middle sits on the centre found at read time. */
    const double *c = vol->centre_world;
    const double dxy = CSAC_GRID_DXY_MM / vol->info.grid_zoom, dz = CSAC_GRID_DZ_MM / vol->info.grid_zoom;
    double g2w[4][4] = {
        {-dxy, 0, 0, c[0] + dxy * 0.5 * (CSAC_GRID_W - 1)},
        {0, -dxy, 0, c[1] + dxy * 0.5 * (CSAC_GRID_H - 1)},
        {0, 0, dz, c[2] - dz * 0.5 * (CSAC_GRID_D - 1)},
        {0, 0, 0, 1}};
    sample_job S = {.vol = vol, .out = out};
    csac__mat44_mul(vol->world2dec, g2w, S.g2d);
    csac_pool_run(ctx->pool, sample_task, &S);
    if (grid) {
        memcpy(grid->grid2world, g2w, sizeof g2w);
        csac__mat44_mul(vol->world2vox, g2w, grid->grid2vox);
    }
    csac__clear_error(ctx);
    return CSAC_OK;
}
