/* Proves, on the real scans in ../shared/ct (README.md there is the reference):
 *  - each scan loads; dims, spacing, datatype, scaling, qform/sform codes,
 *    axis orientation and the HU range (after scl_slope/scl_inter) match the
 *    README table, and no out-of-distribution warning is raised;
 *  - a native-resolution file and its 5 mm version give preprocessed tensors
 *    that agree (correlation > 0.95);
 *  - the canonical grid's orientation is right, read from the image itself:
 *    the spine (bone in the midline) lies posterior (h > 70 of 128), the
 *    liver (the large homogeneous 30..90 HU mass low in the chest) lies on
 *    the patient's right (w < 64) with more than twice the left side's
 *    amount, and the lungs lie above it (d of the lung air > the liver's + 4);
 *  - grid2vox maps model-grid voxels back onto the original voxels (the
 *    original HU looked up there correlates with the tensor, > 0.9);
 *  - reading from a memory buffer gives exactly what reading the file gives;
 *  - a lesion mask (values 0/1) loads with the "not Hounsfield units" and
 *    "no lungs found" warnings. */
#include "csac_internal.h" /* csac__now_ms */
#include "test.h"

#include <stdint.h>
#include <string.h>

#define NT (CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W)
#define X(hu) (((hu) + 1000.0f) / 1400.0f) /* HU -> tensor value */

typedef struct {
    const char *file;
    int64_t dim[3];
    double spacing[3];
    double slope, inter;
    int qcode, scode;
    const char *orient;
    float hu_min, hu_max;
} scan;

static const scan scans[] = {
    {"covidctmd_P001.nii.gz", {512, 512, 148}, {0.748, 0.748, 2.0}, 1, -1024, 1, 1, "LAS", -1024, 1563},
    {"covidctmd_P001_5mm.nii.gz", {256, 256, 59}, {1.496, 1.496, 5.0}, 1, 0, 0, 2, "RAS", -1024, 1438},
    {"covidctmd_normal001.nii.gz", {512, 512, 154}, {0.635, 0.635, 2.0}, 1, -1024, 1, 1, "LAS", -1024, 1679},
    {"covidctmd_normal001_5mm.nii.gz", {256, 256, 62}, {1.270, 1.270, 5.0}, 1, 0, 0, 2, "RAS", -1024, 1396},
    {"covidctmd_cap001_5mm.nii.gz", {256, 256, 67}, {1.180, 1.180, 5.0}, 1, 0, 0, 2, "RAS", -1024, 1734},
    {"ricord_000082_5mm.nii.gz", {256, 256, 64}, {1.406, 1.406, 5.0}, 1, 0, 0, 2, "RAS", -1024, 1448},
    {"lungdx_A0002.nii.gz", {512, 512, 30}, {0.646, 0.646, 8.0}, 1, -1024, 1, 1, "LAS", -1024, 1548},
    {"chest00_5mm.nii.gz", {256, 256, 56}, {1.953, 1.953, 5.0}, 1, 0, 0, 2, "RAS", -1024, 1280},
};
enum { N_SCANS = sizeof scans / sizeof scans[0] };

static double corr(const float *a, const float *b, int n, int step) {
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, m = 0;
    for (int t = 0; t < n; t += step) {
        sa += a[t]; sb += b[t]; saa += (double)a[t] * a[t]; sbb += (double)b[t] * b[t]; sab += (double)a[t] * b[t]; m++;
    }
    return (sab - sa * sb / m) / sqrt((saa - sa * sa / m) * (sbb - sb * sb / m));
}

/* Air (< -400 HU) not connected to the slice border, per axial slice: the
 * test's own reading of "inside the body", independent of the library's. */
static void enclosed_air(const float *t, uint8_t *air) {
    static const int W = CSAC_GRID_W, H = CSAC_GRID_H;
    int *q = malloc(sizeof(int) * W * H);
    for (int d = 0; d < CSAC_GRID_D; d++) {
        const float *s = t + (size_t)d * W * H;
        uint8_t *m = air + (size_t)d * W * H; /* 0 not air, 1 outside air, 2 enclosed air */
        int qh = 0, qt = 0;
        for (int x = 0; x < W * H; x++) {
            m[x] = s[x] < X(-400) ? 2 : 0;
            int h = x / W, w = x % W;
            if (m[x] && (h == 0 || w == 0 || h == H - 1 || w == W - 1)) { m[x] = 1; q[qt++] = x; }
        }
        while (qh < qt) {
            int x = q[qh++], h = x / W, w = x % W;
            int nb[4] = {h > 0 ? x - W : -1, h < H - 1 ? x + W : -1, w > 0 ? x - 1 : -1, w < W - 1 ? x + 1 : -1};
            for (int e = 0; e < 4; e++)
                if (nb[e] >= 0 && m[nb[e]] == 2) { m[nb[e]] = 1; q[qt++] = nb[e]; }
        }
    }
    free(q);
}

static void check_orientation(const char *name, const float *t) {
    const int W = CSAC_GRID_W, H = CSAC_GRID_H, D = CSAC_GRID_D;
    uint8_t *air = malloc(NT);
    enclosed_air(t, air);
    int area[CSAC_GRID_D] = {0}, amax = 0;
    double lung_d = 0, lung_n = 0;
    for (int d = 0; d < D; d++) {
        for (int x = 0; x < W * H; x++) area[d] += air[d * W * H + x] == 2;
        if (area[d] > amax) amax = area[d];
        lung_d += (double)d * area[d];
        lung_n += area[d];
    }
    int z0 = -1, z1 = -1;
    for (int d = 0; d < D; d++)
        if (area[d] >= 0.1 * amax) { if (z0 < 0) z0 = d; z1 = d; }
    CHECK(amax > 1000, "%s: no lungs in the tensor (largest enclosed air %d voxels)", name, amax);
    if (amax <= 1000) { free(air); return; }
    lung_d /= lung_n;
    /* spine: bone (> 200 HU) in the midline columns, over the lung slices */
    double bh = 0, bn = 0;
    for (int d = z0; d <= z1; d++)
        for (int h = 0; h < H; h++)
            for (int w = 54; w < 74; w++)
                if (t[(d * H + h) * W + w] > X(200)) { bh += h; bn++; }
    CHECK(bn > 0 && bh / bn > 70, "%s: midline bone at mean h %.1f: the spine should be posterior (h > 70)", name, bn ? bh / bn : -1);
    /* liver: homogeneous 30..90 HU (pixel and its 8 in-plane neighbours) */
    double right = 0, left = 0, liver_d = 0, liver_n = 0;
    int dlow = z0 + (int)(0.3 * (z1 - z0));
    for (int d = 0; d < D; d++)
        for (int h = 1; h < H - 1; h++)
            for (int w = 1; w < W - 1; w++) {
                int ok = 1;
                for (int dh = -1; dh <= 1 && ok; dh++)
                    for (int dw = -1; dw <= 1 && ok; dw++) {
                        float v = t[(d * H + h + dh) * W + w + dw];
                        ok = v > X(30) && v < X(90);
                    }
                if (!ok) continue;
                if (d <= dlow) { if (w < 64) right++; else left++; }
                if (w < 64) { liver_d += d; liver_n++; }
            }
    CHECK(right > 2 * left, "%s: low in the chest, homogeneous soft tissue right %g vs left %g: the liver should be on the patient's right (w < 64)", name, right, left);
    CHECK(liver_n > 0 && lung_d > liver_d / liver_n + 4, "%s: lung air at mean d %.1f, right-side homogeneous soft tissue at %.1f: the lungs should lie above the liver",
          name, lung_d, liver_n ? liver_d / liver_n : -1);
    free(air);
}

static int read_file_bytes(const char *path, uint8_t **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)sz);
    *n = fread(*buf, 1, (size_t)sz, f);
    fclose(f);
    return *n == (size_t)sz ? 0 : -1;
}

int main(void) {
    csac_params p = csac_default_params();
    p.n_threads = 2;
    csac_ctx *ctx = NULL;
    CHECK(csac_init(&p, &ctx) == CSAC_OK, "init");
    float *tens[N_SCANS] = {0};
    int tested = 0;
    for (int s = 0; s < N_SCANS; s++) {
        const scan *S = &scans[s];
        const char *path = test_ct(S->file);
        if (!path) { printf("skip %s: not found\n", S->file); continue; }
        csac_volume *vol = NULL;
        double t0 = csac__now_ms();
        int st = csac_volume_read_file(ctx, path, &vol);
        CHECK(st == CSAC_OK, "%s: %s", S->file, csac_last_error(ctx));
        if (st) continue;
        tested++;
        csac_volume_info in;
        csac_volume_get_info(vol, &in);
        for (int a = 0; a < 3; a++) {
            CHECK(in.dim[a] == S->dim[a], "%s: dim[%d] %lld, README %lld", S->file, a + 1, (long long)in.dim[a], (long long)S->dim[a]);
            CHECK_NEAR(in.spacing[a], S->spacing[a], 0.0006, S->file);
        }
        CHECK(in.datatype == 4 && !strcmp(in.datatype_name, "INT16"), "%s: datatype %d %s", S->file, in.datatype, in.datatype_name);
        CHECK(in.scl_slope == S->slope && in.scl_inter == S->inter, "%s: scaling %g %g", S->file, in.scl_slope, in.scl_inter);
        CHECK(in.qform_code == S->qcode && in.sform_code == S->scode, "%s: qform_code %d sform_code %d", S->file, in.qform_code, in.sform_code);
        CHECK(!strcmp(in.affine_source, "sform"), "%s: affine from %s", S->file, in.affine_source);
        CHECK(!strcmp(in.orientation, S->orient), "%s: orientation %s, README %s", S->file, in.orientation, S->orient);
        CHECK(in.hu_min == S->hu_min && in.hu_max == S->hu_max, "%s: HU %g..%g, README %g..%g", S->file, in.hu_min, in.hu_max, S->hu_min, S->hu_max);
        CHECK(csac_volume_n_warnings(vol) == 0, "%s: unexpected warning '%s'", S->file, csac_volume_warning(vol, 0));
        tens[s] = malloc(sizeof(float) * NT);
        csac_grid grid;
        st = csac_preprocess(ctx, vol, tens[s], &grid);
        CHECK(st == CSAC_OK, "%s: preprocess: %s", S->file, csac_last_error(ctx));
        printf("%-32s read + preprocess %.0f ms\n", S->file, csac__now_ms() - t0);
        check_orientation(S->file, tens[s]);

        /* grid2vox: original voxels looked up through it match the tensor */
        float *look = malloc(sizeof(float) * NT);
        const float *hu = csac_volume_data(vol);
        for (int d = 0; d < CSAC_GRID_D; d++)
            for (int h = 0; h < CSAC_GRID_H; h++)
                for (int w = 0; w < CSAC_GRID_W; w++) {
                    double v[3];
                    for (int r = 0; r < 3; r++) v[r] = grid.grid2vox[r][0] * w + grid.grid2vox[r][1] * h + grid.grid2vox[r][2] * d + grid.grid2vox[r][3];
                    int64_t i = (int64_t)floor(v[0] + 0.5), j = (int64_t)floor(v[1] + 0.5), k = (int64_t)floor(v[2] + 0.5);
                    float x = -1000;
                    if (i >= 0 && j >= 0 && k >= 0 && i < in.dim[0] && j < in.dim[1] && k < in.dim[2]) x = hu[i + in.dim[0] * (j + in.dim[1] * k)];
                    x = x < -1000 ? -1000 : x > 400 ? 400 : x;
                    look[(d * CSAC_GRID_H + h) * CSAC_GRID_W + w] = X(x);
                }
        double c = corr(look, tens[s], NT, 1);
        CHECK(c > 0.9, "%s: original voxels through grid2vox vs tensor: correlation %.3f", S->file, c);
        free(look);
        csac_volume_free(vol);
    }
    CHECK(tested == N_SCANS, "only %d of %d scans found in %s", tested, N_SCANS, CSAC_SHARED_CT);

    /* native vs 5 mm */
    for (int s = 0; s + 1 < 4; s += 2)
        if (tens[s] && tens[s + 1]) {
            double c = corr(tens[s], tens[s + 1], NT, 1);
            printf("%s vs %s: correlation %.4f\n", scans[s].file, scans[s + 1].file, c);
            CHECK(c > 0.95, "%s vs its 5 mm version: correlation %.4f", scans[s].file, c);
        }

    /* a buffer gives exactly what the file gives */
    const char *path = test_ct("covidctmd_P001_5mm.nii.gz");
    uint8_t *buf = NULL;
    size_t n = 0;
    if (path && read_file_bytes(path, &buf, &n) == 0) {
        csac_volume *vb = NULL;
        int st = csac_volume_read_buffer(ctx, buf, n, &vb);
        CHECK(st == CSAC_OK, "buffer: %s", csac_last_error(ctx));
        free(buf);
        float *tb = malloc(sizeof(float) * NT);
        if (st == CSAC_OK && csac_preprocess(ctx, vb, tb, NULL) == CSAC_OK && tens[1])
            CHECK(memcmp(tb, tens[1], sizeof(float) * NT) == 0, "buffer and file tensors differ");
        free(tb);
        csac_volume_free(vb);
    }

    /* a lesion mask is not a CT */
    const char *mask = test_ct("mosmed_masks/study_0255_mask.nii.gz");
    if (mask) {
        csac_volume *vm = NULL;
        int st = csac_volume_read_file(ctx, mask, &vm);
        CHECK(st == CSAC_OK, "mask: %s", csac_last_error(ctx));
        int normalised = 0, nolungs = 0;
        for (int i = 0; i < csac_volume_n_warnings(vm); i++) {
            normalised |= strstr(csac_volume_warning(vm, i), "not CT Hounsfield units") != NULL;
            nolungs |= strstr(csac_volume_warning(vm, i), "no lungs found") != NULL;
        }
        CHECK(normalised && nolungs, "mask warnings: normalised %d, no lungs %d", normalised, nolungs);
        csac_volume_free(vm);
    }
    for (int s = 0; s < N_SCANS; s++) free(tens[s]);
    csac_free(ctx);
    return test_summary("test_nifti");
}
