/*
 * heatmap.c - where the network looked: a layer's Grad-CAM map (model.c)
 * upsampled onto the model grid, then mapped back through the preprocessing
 * transform onto every voxel of the original scan.
 *
 * Normalisation: a Grad-CAM or activation map is divided by its maximum, so
 * the most suspicious point is 1 and values are comparable within a scan, not
 * between scans (the probability says how suspicious the scan is). An
 * all-zero map stays zero. The LESION map is the lesion head's sigmoid, kept
 * as it is, so that its values compare between scans.
 */
#include "csac_internal.h"
#include "model.h"
#include "volume.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The default pair, chosen by measured localisation on synthetic lesions
 * and by how much of a real scan it lights up (docs/heatmaps.md). */
#define CSAC_HEATMAP_DEFAULT_LAYER "lesion"
#define CSAC_HEATMAP_DEFAULT_MODE CSAC_HEATMAP_LESION

const char *csac_heatmap_default_layer(void) { return CSAC_HEATMAP_DEFAULT_LAYER; }
int csac_heatmap_default_mode(void) { return CSAC_HEATMAP_DEFAULT_MODE; }

typedef struct {
    const float *cam;
    int dims[3];
    double a[3], b[3];
    float *out;
} upsample_job;

/* Linear interpolation weights along one axis at cell coordinate q, clamped
 * to the edge cells (the map is defined up to half a cell past the centres). */
static void lin(double q, int n, int *i0, int *i1, float *f) {
    if (q <= 0) { *i0 = *i1 = 0; *f = 0; return; }
    if (q >= n - 1) { *i0 = *i1 = n - 1; *f = 0; return; }
    *i0 = (int)q;
    *i1 = *i0 + 1;
    *f = (float)(q - *i0);
}

static void upsample_task(void *arg, int ith, int nth) {
    upsample_job *j = arg;
    long lo, hi;
    csac_split(CSAC_GRID_D, ith, nth, &lo, &hi);
    const int D = j->dims[0], H = j->dims[1], W = j->dims[2];
    for (long z = lo; z < hi; z++) {
        int z0, z1;
        float fz;
        lin((z - j->b[0]) / j->a[0], D, &z0, &z1, &fz);
        for (int y = 0; y < CSAC_GRID_H; y++) {
            int y0, y1;
            float fy;
            lin((y - j->b[1]) / j->a[1], H, &y0, &y1, &fy);
            float *o = j->out + ((size_t)z * CSAC_GRID_H + y) * CSAC_GRID_W;
            const float *c00 = j->cam + ((size_t)z0 * H + y0) * W, *c01 = j->cam + ((size_t)z0 * H + y1) * W;
            const float *c10 = j->cam + ((size_t)z1 * H + y0) * W, *c11 = j->cam + ((size_t)z1 * H + y1) * W;
            for (int x = 0; x < CSAC_GRID_W; x++) {
                int x0, x1;
                float fx;
                lin((x - j->b[2]) / j->a[2], W, &x0, &x1, &fx);
                float v0 = (c00[x0] + fx * (c00[x1] - c00[x0])) * (1 - fy) + (c01[x0] + fx * (c01[x1] - c01[x0])) * fy;
                float v1 = (c10[x0] + fx * (c10[x1] - c10[x0])) * (1 - fy) + (c11[x0] + fx * (c11[x1] - c11[x0])) * fy;
                o[x] = v0 + fz * (v1 - v0);
            }
        }
    }
}

int csac_heatmap(csac_ctx *ctx, const char *layer, int mode, float *out) {
    if (!ctx || !out) return csac__fail(ctx, CSAC_E_ARG, "csac_heatmap: NULL argument");
    if (mode < CSAC_HEATMAP_DEFAULT || mode > CSAC_HEATMAP_LESION)
        return csac__fail(ctx, CSAC_E_ARG,
                          "csac_heatmap: mode %d is none of DEFAULT (-1), GRADCAM (0), ACTIVATION (1), LESION (2)", mode);
    if (mode == CSAC_HEATMAP_DEFAULT) {
        if (layer)
            return csac__fail(ctx, CSAC_E_ARG,
                              "csac_heatmap: mode DEFAULT goes with layer NULL; name GRADCAM, ACTIVATION or LESION for '%s'",
                              layer);
        mode = CSAC_HEATMAP_DEFAULT_MODE;
    }
    upsample_job j;
    int st;
    j.cam = csac__model_cam(ctx, layer ? layer : CSAC_HEATMAP_DEFAULT_LAYER, mode, j.dims, j.a, j.b, &st);
    if (!j.cam) return st;
    j.out = out;
    csac_pool_run(ctx->pool, upsample_task, &j);
    if (mode == CSAC_HEATMAP_LESION) return CSAC_OK; /* a score per cell: comparable between scans */
    size_t n = (size_t)CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W;
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = out[i] > mx ? out[i] : mx;
    if (mx > 0) /* division, not a reciprocal: the maximum becomes exactly 1 */
        for (size_t i = 0; i < n; i++) out[i] /= mx;
    return CSAC_OK;
}

/* ---- back onto the original voxels ---- */

typedef struct {
    const float *map;
    double v2g[4][4]; /* original voxel -> model grid (w, h, d) */
    int64_t dim[3], k0, k1;
    int step;         /* in-plane sampling step (1 = every voxel) */
    float *out;       /* resample: (k1-k0) slices; scores: one max per slice */
    int scores;
} resample_job;

/* Trilinear sample of the grid map at continuous (w, h, d); 0 outside the grid. */
static float sample_grid(const float *g, double w, double h, double d) {
    if (w < -0.5 || h < -0.5 || d < -0.5 || w > CSAC_GRID_W - 0.5 || h > CSAC_GRID_H - 0.5 || d > CSAC_GRID_D - 0.5)
        return 0.0f;
    int w0, w1, h0, h1, d0, d1;
    float fw, fh, fd;
    lin(w, CSAC_GRID_W, &w0, &w1, &fw);
    lin(h, CSAC_GRID_H, &h0, &h1, &fh);
    lin(d, CSAC_GRID_D, &d0, &d1, &fd);
#define G(z, y, x) g[((size_t)(z) * CSAC_GRID_H + (y)) * CSAC_GRID_W + (x)]
    float a = G(d0, h0, w0) + fw * (G(d0, h0, w1) - G(d0, h0, w0));
    float b = G(d0, h1, w0) + fw * (G(d0, h1, w1) - G(d0, h1, w0));
    float c = G(d1, h0, w0) + fw * (G(d1, h0, w1) - G(d1, h0, w0));
    float e = G(d1, h1, w0) + fw * (G(d1, h1, w1) - G(d1, h1, w0));
#undef G
    float top = a + fh * (b - a), bot = c + fh * (e - c);
    return top + fd * (bot - top);
}

static void resample_task(void *arg, int ith, int nth) {
    resample_job *j = arg;
    long lo, hi;
    csac_split(j->k1 - j->k0, ith, nth, &lo, &hi);
    const double(*M)[4] = j->v2g;
    for (long kk = lo; kk < hi; kk++) {
        int64_t k = j->k0 + kk;
        float mx = 0;
        float *o = j->scores ? NULL : j->out + (size_t)kk * j->dim[0] * j->dim[1];
        for (int64_t y = 0; y < j->dim[1]; y += j->step) {
            double bw = M[0][1] * y + M[0][2] * k + M[0][3];
            double bh = M[1][1] * y + M[1][2] * k + M[1][3];
            double bd = M[2][1] * y + M[2][2] * k + M[2][3];
            for (int64_t x = 0; x < j->dim[0]; x += j->step) {
                float v = sample_grid(j->map, bw + M[0][0] * x, bh + M[1][0] * x, bd + M[2][0] * x);
                if (o) o[(size_t)y * j->dim[0] + x] = v;
                else if (v > mx) mx = v;
            }
        }
        if (j->scores) j->out[kk] = mx;
    }
}

static int resample_setup(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, const float *grid_map,
                          int64_t k0, int64_t k1, resample_job *j) {
    if (!ctx || !vol || !grid || !grid_map) return csac__fail(ctx, CSAC_E_ARG, "heatmap: NULL argument");
    memset(j, 0, sizeof *j);
    memcpy(j->dim, vol->info.dim, sizeof j->dim);
    if (k0 < 0 || k1 > j->dim[2] || k0 >= k1)
        return csac__fail(ctx, CSAC_E_ARG, "heatmap: slices %lld..%lld are outside 0..%lld", (long long)k0,
                          (long long)k1, (long long)j->dim[2]);
    if (!csac__mat44_inverse(grid->grid2vox, j->v2g))
        return csac__fail(ctx, CSAC_E_ARG, "heatmap: the grid mapping is singular");
    j->map = grid_map;
    j->k0 = k0;
    j->k1 = k1;
    j->step = 1;
    return CSAC_OK;
}

int csac_heatmap_resample(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, const float *grid_map,
                          int64_t k0, int64_t k1, float *out) {
    resample_job j;
    int st = resample_setup(ctx, vol, grid, grid_map, k0, k1, &j);
    if (st) return st;
    if (!out) return csac__fail(ctx, CSAC_E_ARG, "csac_heatmap_resample: NULL output");
    j.out = out;
    csac_pool_run(ctx->pool, resample_task, &j);
    return CSAC_OK;
}

int csac_heatmap_slice_scores(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, const float *grid_map,
                              float *scores) {
    resample_job j;
    int st = resample_setup(ctx, vol, grid, grid_map, 0, vol ? vol->info.dim[2] : 1, &j);
    if (st) return st;
    if (!scores) return csac__fail(ctx, CSAC_E_ARG, "csac_heatmap_slice_scores: NULL output");
    /* every 2nd voxel in-plane: the map varies over >= 8 model voxels (22 mm) */
    j.step = 2;
    j.scores = 1;
    j.out = scores;
    csac_pool_run(ctx->pool, resample_task, &j);
    return CSAC_OK;
}

void csac_buffer_free(void *p) { free(p); }

int csac_heatmap_nifti(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, const float *grid_map, int gzip,
                       void **out, size_t *n) {
    if (!out || !n) return csac__fail(ctx, CSAC_E_ARG, "csac_heatmap_nifti: NULL output");
    *out = NULL;
    *n = 0;
    resample_job j;
    int st = resample_setup(ctx, vol, grid, grid_map, 0, vol ? vol->info.dim[2] : 1, &j);
    if (st) return st;
    size_t plane = (size_t)j.dim[0] * j.dim[1], nvox = plane * (size_t)j.dim[2];
    int64_t slab = (int64_t)(((size_t)8 << 20) / (plane * sizeof(float))); /* ~8 MB of floats at a time */
    if (slab < 1) slab = 1;
    uint8_t *u8 = malloc(nvox ? nvox : 1);
    float *f = malloc(sizeof(float) * plane * (size_t)slab);
    if (!u8 || !f) {
        free(u8);
        free(f);
        return csac__fail(ctx, CSAC_E_NOMEM, "out of memory for a %zu-voxel heatmap", nvox);
    }
    for (int64_t k0 = 0; k0 < j.dim[2]; k0 += slab) {
        j.k0 = k0;
        j.k1 = k0 + slab < j.dim[2] ? k0 + slab : j.dim[2];
        j.out = f;
        csac_pool_run(ctx->pool, resample_task, &j);
        size_t cnt = plane * (size_t)(j.k1 - j.k0);
        uint8_t *o = u8 + plane * (size_t)k0;
        for (size_t i = 0; i < cnt; i++) { /* round to the nearest 1/255 */
            float v = f[i];
            o[i] = (uint8_t)(v <= 0 ? 0 : v >= 1 ? 255 : (int)(v * 255.0f + 0.5f));
        }
    }
    free(f);
    csac_nifti_out img = {.data_u8 = u8, .slope = 1.0f / 255.0f, .dim = {j.dim[0], j.dim[1], j.dim[2]},
                          .geom = &vol->geom, .gzip = gzip,
                          .descrip = "csac heatmap 0..1 (docs/heatmaps.md)"};
    st = csac__nifti_write_buffer(ctx, &img, out, n);
    free(u8);
    return st;
}
