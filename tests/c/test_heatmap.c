/* Proves: the heatmap API on a real scan (../shared/ct) with the
 * deterministic random model: the default map (the lesion head's sigmoid, in
 * (0,1), not normalised), a Grad-CAM and an activation map (in [0,1] with max
 * 1 or all zero) are identical for 1 and 2 threads; the default pair is what
 * its names say; the heatmap NIfTI has
 * the input's dims, qform/sform codes and affine (read back by the reader),
 * for an sform-only RAS file and a qform+sform LAS file, and its voxels equal
 * csac_heatmap_resample within the uint8 step; per-slice scores bound the
 * resampled slices; misuse gets specific errors. (Grad-CAM's values are
 * checked against PyTorch autograd in tests/python/test_heatmap_parity.py.) */
#include "csac.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

enum { NG = CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W };

static int heatmap_for(const char *path, int threads, const char *layer, int mode, float *map, csac_volume **vol_out,
                       csac_grid *grid, csac_ctx **ctx_out) {
    csac_params p = csac_default_params();
    p.n_threads = threads;
    csac_ctx *ctx = NULL;
    if (csac_init(&p, &ctx) != CSAC_OK) return -1;
    csac_volume *vol = NULL;
    int st = csac_model_init_random(ctx, 1);
    if (!st) st = csac_volume_read_file(ctx, path, &vol);
    if (!st) st = csac_preprocess(ctx, vol, csac_model_input(ctx), grid);
    csac_result r;
    if (!st) st = csac_forward(ctx, &r);
    if (!st) st = csac_heatmap(ctx, layer, mode, map);
    CHECK(st == CSAC_OK, "%s: %s", path, csac_last_error(ctx));
    *vol_out = vol;
    *ctx_out = ctx;
    return st;
}

static void check_file(const char *name) {
    const char *path = test_ct(name);
    if (!path) { fprintf(stderr, "skip %s: ../shared/ct missing\n", name); test_failures++; return; }
    float *m1 = malloc(sizeof(float) * NG), *m2 = malloc(sizeof(float) * NG), *ma = malloc(sizeof(float) * NG);
    csac_volume *v1 = NULL, *v2 = NULL;
    csac_grid g1, g2;
    csac_ctx *c1 = NULL, *c2 = NULL;
    if (heatmap_for(path, 1, "subB.pool1", CSAC_HEATMAP_GRADCAM, m1, &v1, &g1, &c1) ||
        heatmap_for(path, 2, "subB.pool1", CSAC_HEATMAP_GRADCAM, m2, &v2, &g2, &c2))
        goto out;
    CHECK(memcmp(m1, m2, sizeof(float) * NG) == 0, "%s: Grad-CAM, 1 and 2 threads differ", name);
    float mx = 0, mn = 1;
    for (int i = 0; i < NG; i++) { mx = m1[i] > mx ? m1[i] : mx; mn = m1[i] < mn ? m1[i] : mn; }
    CHECK(mn >= 0 && (mx == 1.0f || mx == 0.0f), "%s: Grad-CAM range %g..%g", name, mn, mx);
    /* the default pair, 1 and 2 threads, and equal to naming it */
    CHECK(csac_heatmap(c1, NULL, CSAC_HEATMAP_DEFAULT, m1) == CSAC_OK, "%s", csac_last_error(c1));
    CHECK(csac_heatmap(c2, NULL, CSAC_HEATMAP_DEFAULT, m2) == CSAC_OK, "%s", csac_last_error(c2));
    CHECK(memcmp(m1, m2, sizeof(float) * NG) == 0, "%s: default map, 1 and 2 threads differ", name);
    CHECK(csac_heatmap(c2, csac_heatmap_default_layer(), csac_heatmap_default_mode(), ma) == CSAC_OK, "%s",
          csac_last_error(c2));
    CHECK(memcmp(m1, ma, sizeof(float) * NG) == 0, "%s: default map differs from its named pair", name);
    mx = 0, mn = 1;
    for (int i = 0; i < NG; i++) { mx = m1[i] > mx ? m1[i] : mx; mn = m1[i] < mn ? m1[i] : mn; }
    CHECK(mn > 0 && mx < 1 && mx > mn, "%s: default (lesion) map range %g..%g", name, mn, mx);
    CHECK(csac_heatmap(c2, "subB.pool1", CSAC_HEATMAP_ACTIVATION, ma) == CSAC_OK, "%s", csac_last_error(c2));
    mx = 0;
    for (int i = 0; i < NG; i++) mx = ma[i] > mx ? ma[i] : mx;
    CHECK(mx == 1.0f, "%s: activation map max %g", name, mx);

    /* NIfTI with the input's geometry */
    void *buf = NULL;
    size_t n = 0;
    int st = csac_heatmap_nifti(c2, v2, &g2, ma, 1, &buf, &n);
    CHECK(st == CSAC_OK && n > 352, "%s: heatmap nifti: %s", name, csac_last_error(c2));
    csac_volume *h = NULL;
    if (st == CSAC_OK) st = csac_volume_read_buffer(c2, buf, n, &h);
    CHECK(st == CSAC_OK, "%s: reading the heatmap back: %s", name, csac_last_error(c2));
    if (h) {
        csac_volume_info a, b;
        csac_volume_get_info(v2, &a);
        csac_volume_get_info(h, &b);
        CHECK(a.dim[0] == b.dim[0] && a.dim[1] == b.dim[1] && a.dim[2] == b.dim[2], "%s: dims", name);
        CHECK(a.qform_code == b.qform_code && a.sform_code == b.sform_code, "%s: codes q%d s%d vs q%d s%d", name,
              a.qform_code, a.sform_code, b.qform_code, b.sform_code);
        CHECK(strcmp(a.affine_source, b.affine_source) == 0, "%s: affine source", name);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) CHECK_NEAR(a.vox2world[r][c], b.vox2world[r][c], 1e-3, "affine");
        CHECK(strcmp(a.orientation, b.orientation) == 0, "%s: orientation %s vs %s", name, a.orientation, b.orientation);
        /* voxels = resampled heatmap, within half a uint8 step */
        int64_t k = a.dim[2] / 2, plane = a.dim[0] * a.dim[1];
        float *sl = malloc(sizeof(float) * (size_t)plane);
        CHECK(csac_heatmap_resample(c2, v2, &g2, ma, k, k + 1, sl) == CSAC_OK, "%s", csac_last_error(c2));
        const float *hv = csac_volume_data(h) + k * plane;
        double err = 0, smax = 0;
        for (int64_t i = 0; i < plane; i++) {
            double e = fabs(hv[i] - sl[i]);
            err = e > err ? e : err;
            smax = sl[i] > smax ? sl[i] : smax;
        }
        CHECK(err <= 0.5 / 255 + 1e-6, "%s: NIfTI vs resample max error %g", name, err);
        float *scores = malloc(sizeof(float) * (size_t)a.dim[2]);
        CHECK(csac_heatmap_slice_scores(c2, v2, &g2, ma, scores) == CSAC_OK, "%s", csac_last_error(c2));
        CHECK(scores[k] <= smax + 1e-6 && scores[k] >= 0.9 * smax, "%s: score %g vs slice max %g", name, scores[k], smax);
        free(scores);
        free(sl);
        csac_volume_free(h);
    }
    csac_buffer_free(buf);
out:
    csac_volume_free(v1);
    csac_volume_free(v2);
    csac_free(c1);
    csac_free(c2);
    free(m1); free(m2); free(ma);
}

int main(void) {
    check_file("covidctmd_P001_5mm.nii.gz");   /* RAS, sform only (qform_code 0) */
    check_file("lungdx_A0002.nii.gz");         /* native, qform = sform, code 1 */

    csac_params p = csac_default_params();
    csac_ctx *ctx = NULL;
    csac_init(&p, &ctx);
    float *m = malloc(sizeof(float) * NG);
    CHECK(csac_heatmap(ctx, NULL, 0, m) == CSAC_E_STATE, "no model yet");
    csac_model_init_random(ctx, 1);
    CHECK(csac_heatmap(ctx, NULL, 0, m) == CSAC_E_STATE && strstr(csac_last_error(ctx), "run the network first"),
          "before forward: '%s'", csac_last_error(ctx));
    csac_result r;
    csac_forward(ctx, &r);
    CHECK(csac_heatmap(ctx, "no.such", 0, m) == CSAC_E_ARG && strstr(csac_last_error(ctx), "'no.such'"), "bad layer: '%s'",
          csac_last_error(ctx));
    CHECK(csac_heatmap(ctx, "stage2.pool", CSAC_HEATMAP_GRADCAM, m) == CSAC_E_ARG, "baseline pool Grad-CAM is refused");
    CHECK(csac_heatmap(ctx, "stage2.pool", CSAC_HEATMAP_ACTIVATION, m) == CSAC_OK, "baseline pool activation: %s",
          csac_last_error(ctx));
    CHECK(csac_heatmap(ctx, NULL, 7, m) == CSAC_E_ARG && strstr(csac_last_error(ctx), "mode 7"), "bad mode: '%s'",
          csac_last_error(ctx));
    CHECK(csac_heatmap(ctx, "subB.pool1", CSAC_HEATMAP_DEFAULT, m) == CSAC_E_ARG &&
              strstr(csac_last_error(ctx), "'subB.pool1'"),
          "DEFAULT with a named layer: '%s'", csac_last_error(ctx));
    CHECK(csac_heatmap(ctx, NULL, CSAC_HEATMAP_GRADCAM, m) == CSAC_E_ARG && strstr(csac_last_error(ctx), "'lesion'"),
          "Grad-CAM at the default layer (the lesion head) is refused by name: '%s'", csac_last_error(ctx));
    CHECK(csac_heatmap(ctx, "subB.pool1", CSAC_HEATMAP_LESION, m) == CSAC_E_ARG && strstr(csac_last_error(ctx), "LESION"),
          "LESION at another layer: '%s'", csac_last_error(ctx));
    CHECK(csac_heatmap(ctx, "lesion", CSAC_HEATMAP_ACTIVATION, m) == CSAC_E_ARG, "the lesion head in ACTIVATION mode");
    CHECK(csac_heatmap(ctx, NULL, 3, m) == CSAC_E_ARG && strstr(csac_last_error(ctx), "mode 3"), "mode 3: '%s'",
          csac_last_error(ctx));
    CHECK(strcmp(csac_heatmap_default_layer(), "lesion") == 0, "default layer");
    CHECK(csac_heatmap_default_mode() == CSAC_HEATMAP_LESION, "default mode");
    free(m);
    csac_free(ctx);
    return test_summary("test_heatmap");
}
