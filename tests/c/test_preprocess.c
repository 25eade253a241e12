/* Proves, on a synthetic chest phantom (body, two lungs, heart, spine, liver,
 * integer HU) written by this test as NIfTI in memory:
 *  - every supported datatype (uint8, int8, int16, uint16, int32, uint32,
 *    float32, float64), with and without scl_slope/scl_inter (int16 with
 *    scl_inter -1024), big-endian, gzip, NIfTI-2, 4D, and every geometry
 *    variant that stores the same voxels differently (RAS, LPS via sform,
 *    LAS via qform only with qfac -1, axes permuted, pixdim only) gives the
 *    same preprocessed tensor as the plain float32 HU file: max |diff|
 *    <= 2e-5 for exact encodings, <= (slope/2)/1400 + 2e-5 for quantised ones;
 *  - an oblique acquisition (rotated 14 deg about z and 9 deg about x) stored
 *    as sform or as qform gives the same tensor either way (<= 1e-4), and one
 *    close to the axis-aligned tensor (correlation > 0.97, mean |diff| < 0.02);
 *  - the tensor and the HU summary are identical for 1 and 3 threads (plain
 *    and through the threaded gzip path);
 *  - the NIfTI writer round-trips data and geometry (.nii and .nii.gz, file
 *    and buffer);
 *  - the grid centre lands on the phantom's lungs. */
#include "csac.h"
#include "nifti_make.h"
#include "test.h"
#include "volume.h"

#include <stdio.h>

enum { NX = 215, NY = 175, NZ = 127 }; /* odd: decimation boxes do not tile the axes */
#define SX 1.4
#define SY 1.4
#define SZ 2.5
#define NT (CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W)

/* world RAS+ mm -> HU (integers). +x is the patient's right. */
static float phantom(double x, double y, double z) {
    x -= 12; y += 7; z -= 15; /* not centred on the origin */
    if ((x / 140) * (x / 140) + (y / 100) * (y / 100) > 1 || fabs(z) > 140) return -1000;
    double v = 40 + floor(25 * sin(x / 13) * cos(y / 17) * cos(z / 19) + 0.5);
    if (((x - 60) / 70) * ((x - 60) / 70) + (y / 70) * (y / 70) + ((z + 110) / 45) * ((z + 110) / 45) <= 1) v = 60;
    for (int s = -1; s <= 1; s += 2) {
        double lx = (x - 70 * s) / 55, ly = y / 75, lz = (z - 20) / 110;
        if (lx * lx + ly * ly + lz * lz <= 1) v = -850 + floor(40 * sin((x + y + z) / 9) + 0.5);
    }
    if ((x + 25) * (x + 25) + (y - 35) * (y - 35) + (z + 30) * (z + 30) <= 45 * 45) v = 45;
    if (x * x + (y + 85) * (y + 85) <= 15 * 15) v = 500;
    return (float)v;
}

static void ref_affine(double A[4][4]) {
    memset(A, 0, sizeof(double) * 16);
    A[0][0] = SX; A[1][1] = SY; A[2][2] = SZ; A[3][3] = 1;
    A[0][3] = -0.5 * (NX - 1) * SX; A[1][3] = -0.5 * (NY - 1) * SY; A[2][3] = -0.5 * (NZ - 1) * SZ;
}

/* A variant stores reference voxels along permuted / flipped axes:
 * variant axis a walks reference axis perm[a], reversed if flip[a]. */
typedef struct { int perm[3], flip[3]; } axmap;

static float *remap(const float *ref, const axmap *m, int64_t dim[3], double A[4][4]) {
    const int64_t rd[3] = {NX, NY, NZ};
    double R[4][4];
    ref_affine(R);
    for (int a = 0; a < 3; a++) dim[a] = rd[m->perm[a]];
    float *o = malloc(sizeof(float) * NX * NY * NZ);
    int64_t r[3];
    size_t t = 0;
    for (int64_t k = 0; k < dim[2]; k++)
        for (int64_t j = 0; j < dim[1]; j++)
            for (int64_t i = 0; i < dim[0]; i++) {
                int64_t v[3] = {i, j, k};
                for (int a = 0; a < 3; a++) r[m->perm[a]] = m->flip[a] ? dim[a] - 1 - v[a] : v[a];
                o[t++] = ref[r[0] + NX * (r[1] + NY * r[2])];
            }
    /* variant voxel 0 sits at reference index r0; axis a steps along +-perm[a] */
    double r0[3];
    for (int a = 0; a < 3; a++) r0[m->perm[a]] = m->flip[a] ? (double)(dim[a] - 1) : 0;
    memset(A, 0, sizeof(double) * 16);
    for (int row = 0; row < 3; row++) {
        for (int a = 0; a < 3; a++) A[row][a] = R[row][m->perm[a]] * (m->flip[a] ? -1 : 1);
        A[row][3] = R[row][0] * r0[0] + R[row][1] * r0[1] + R[row][2] * r0[2] + R[row][3];
    }
    A[3][3] = 1;
    return o;
}

static int run_buffer(csac_ctx *ctx, const uint8_t *buf, size_t n, float *out, csac_volume **keep) {
    csac_volume *vol = NULL;
    int st = csac_volume_read_buffer(ctx, buf, n, &vol);
    if (st) return st;
    st = csac_preprocess(ctx, vol, out, NULL);
    if (keep) *keep = vol;
    else csac_volume_free(vol);
    return st;
}

static double max_abs_diff(const float *a, const float *b) {
    double m = 0;
    for (int t = 0; t < NT; t++) { double d = fabs((double)a[t] - b[t]); if (!(d <= m)) m = d; }
    return m;
}

static double corr(const float *a, const float *b, double *mad) {
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, s = 0;
    for (int t = 0; t < NT; t++) {
        sa += a[t]; sb += b[t]; saa += (double)a[t] * a[t]; sbb += (double)b[t] * b[t]; sab += (double)a[t] * b[t];
        s += fabs((double)a[t] - b[t]);
    }
    double n = NT, ca = saa - sa * sa / n, cb = sbb - sb * sb / n, cab = sab - sa * sb / n;
    if (mad) *mad = s / n;
    return cab / sqrt(ca * cb);
}

typedef struct {
    const char *name;
    int dt;
    double slope, inter;
    axmap map;
    int ver, swap, gz, qcode, scode, nvol;
    double tol;
} variant;

int main(void) {
    csac_params p = csac_default_params();
    csac_ctx *ctx = NULL, *ctx3 = NULL;
    CHECK(csac_init(&p, &ctx) == CSAC_OK, "init");
    p.n_threads = 3;
    CHECK(csac_init(&p, &ctx3) == CSAC_OK, "init 3 threads");

    /* the reference: float32 HU, RAS, sform + qform */
    double R[4][4];
    ref_affine(R);
    float *ref = malloc(sizeof(float) * NX * NY * NZ);
    for (int k = 0; k < NZ; k++)
        for (int j = 0; j < NY; j++)
            for (int i = 0; i < NX; i++)
                ref[i + NX * (j + NY * k)] = phantom(R[0][0] * i + R[0][3], R[1][1] * j + R[1][3], R[2][2] * k + R[2][3]);
    float *t_ref = malloc(sizeof(float) * NT), *t = malloc(sizeof(float) * NT), *t2 = malloc(sizeof(float) * NT);
    mk_spec s = mk_default(NX, NY, NZ, DT_FLOAT32);
    memcpy(s.affine, R, sizeof R);
    size_t n;
    uint8_t *buf = mk_nifti(&s, ref, sizeof(float) * NX * NY * NZ, &n);
    csac_volume *vref = NULL;
    int st = run_buffer(ctx, buf, n, t_ref, &vref);
    CHECK(st == CSAC_OK, "reference: %s", csac_last_error(ctx));
    if (st) return test_summary("test_preprocess");
    CHECK(csac_volume_n_warnings(vref) == 0, "reference has warnings: %s", csac_volume_warning(vref, 0));
    CHECK(vref->lungs_found, "phantom lungs not found");
    /* lungs: x 12+-125, y -7+-75, z 15+20 +-110: bbox centre (12, -7, 35) */
    CHECK_NEAR(vref->centre_world[0], 12, 3.0, "centre x on the lungs");
    CHECK_NEAR(vref->centre_world[1], -7, 3.0, "centre y on the lungs");
    CHECK_NEAR(vref->centre_world[2], 35, 5.0, "centre z on the lungs");
    /* patient size: the two lung ellipsoids less the 45 mm sphere they share
     * hold 3659 mL (numerically integrated at 1 mm); the zoom follows */
    csac_volume_info iref;
    csac_volume_get_info(vref, &iref);
    CHECK_NEAR(iref.lung_ml, 3659, 37, "lung volume");
    CHECK_NEAR(iref.grid_zoom, cbrt(CSAC_GRID_REF_LUNG_ML / iref.lung_ml), 1e-12, "grid zoom");
    {
        csac_grid gr;
        CHECK(csac_preprocess(ctx, vref, t, &gr) == CSAC_OK, "preprocess with grid");
        CHECK_NEAR(gr.grid2world[0][0], -CSAC_GRID_DXY_MM / iref.grid_zoom, 1e-12, "grid x spacing follows the zoom");
        CHECK_NEAR(gr.grid2world[2][2], CSAC_GRID_DZ_MM / iref.grid_zoom, 1e-12, "grid z spacing follows the zoom");
    }

    /* threads: read + preprocess with 3 threads is bitwise the same */
    st = run_buffer(ctx3, buf, n, t, NULL);
    CHECK(st == CSAC_OK && memcmp(t, t_ref, sizeof(float) * NT) == 0, "3 threads differ from 1 (max %g)", max_abs_diff(t, t_ref));
    free(buf);

    const axmap ras = {{0, 1, 2}, {0, 0, 0}}, lps = {{0, 1, 2}, {1, 1, 0}}, las = {{0, 1, 2}, {1, 0, 0}};
    const axmap perm = {{2, 0, 1}, {0, 1, 0}}; /* slice axis stored fastest, x reversed */
    const variant vars[] = {
        {"float64", DT_FLOAT64, 0, 0, ras, 1, 0, 0, 1, 1, 1, 2e-5},
        {"int16 (no scaling)", DT_INT16, 0, 0, ras, 1, 0, 0, 1, 1, 1, 2e-5},
        {"int16 scl_inter -1024 .nii.gz", DT_INT16, 1, -1024, ras, 1, 0, 1, 1, 1, 1, 2e-5},
        {"uint16 scl_inter -1024", DT_UINT16, 1, -1024, ras, 1, 0, 0, 1, 1, 1, 2e-5},
        {"int32", DT_INT32, 0, 0, ras, 1, 0, 0, 1, 1, 1, 2e-5},
        {"uint32 scl_inter -2000", DT_UINT32, 1, -2000, ras, 1, 0, 0, 1, 1, 1, 2e-5},
        {"float32 scl_slope 0.5 inter -3", DT_FLOAT32, 0.5, -3, ras, 1, 0, 0, 1, 1, 1, 2e-5},
        {"uint8 slope 8 inter -1024", DT_UINT8, 8, -1024, ras, 1, 0, 0, 1, 1, 1, 4.0 / 1400 + 2e-5},
        {"int8 slope 12 inter -200", DT_INT8, 12, -200, ras, 1, 0, 0, 1, 1, 1, 6.0 / 1400 + 2e-5},
        {"int16 big-endian", DT_INT16, 1, -1024, ras, 1, 1, 0, 1, 1, 1, 2e-5},
        {"float32 big-endian .nii.gz", DT_FLOAT32, 0, 0, ras, 1, 1, 1, 1, 1, 1, 2e-5},
        {"LPS, sform only", DT_INT16, 1, -1024, lps, 1, 0, 0, 0, 2, 1, 2e-5},
        {"LAS, qform only (qfac -1)", DT_INT16, 1, -1024, las, 1, 0, 0, 1, 0, 1, 2e-5},
        {"axes permuted (k,i,j), sform", DT_INT16, 0, 0, perm, 1, 0, 0, 0, 1, 1, 2e-5},
        {"NIfTI-2 float32 LPS", DT_FLOAT32, 0, 0, lps, 2, 0, 0, 1, 1, 1, 2e-5},
        {"NIfTI-2 int16 big-endian LAS .nii.gz", DT_INT16, 1, -1024, las, 2, 1, 1, 1, 1, 1, 2e-5},
        {"4D, 2 volumes", DT_INT16, 0, 0, ras, 1, 0, 0, 1, 1, 2, 2e-5},
        {"pixdim only (no qform, no sform)", DT_INT16, 0, 0, ras, 1, 0, 0, 0, 0, 1, 2e-5},
    };
    const int nvars = (int)(sizeof vars / sizeof vars[0]);
    int dts_seen = 0;
    for (int v = 0; v < nvars; v++) {
        const variant *V = &vars[v];
        int64_t dim[3];
        double A[4][4];
        float *hu = remap(ref, &V->map, dim, A);
        size_t nv = (size_t)(dim[0] * dim[1] * dim[2]);
        size_t nvol = (size_t)V->nvol;
        float *hu4 = hu;
        if (nvol > 1) { /* second volume: something else entirely */
            hu4 = malloc(sizeof(float) * nv * nvol);
            memcpy(hu4, hu, sizeof(float) * nv);
            for (size_t q = 0; q < nv; q++) hu4[nv + q] = 3000;
        }
        void *enc = mk_encode(hu4, nv * nvol, V->dt, V->slope, V->inter);
        mk_spec sp = mk_default(dim[0], dim[1], dim[2], V->dt);
        sp.ver = V->ver;
        sp.swap = V->swap;
        sp.slope = V->slope;
        sp.inter = V->inter;
        sp.qform_code = V->qcode;
        sp.sform_code = V->scode;
        if (nvol > 1) { sp.dim[0] = 4; sp.dim[4] = (int64_t)nvol; }
        memcpy(sp.affine, A, sizeof A);
        if (!V->qcode && !V->scode) { /* pixdim only: no origin, but the same spacing */
            for (int r = 0; r < 3; r++) sp.affine[r][3] = 0;
        }
        size_t nb;
        uint8_t *b = mk_nifti(&sp, enc, nv * nvol * (size_t)mk_dtsize(V->dt), &nb);
        if (V->gz) {
            size_t gzn;
            uint8_t *g = mk_gzip(b, nb, &gzn);
            free(b);
            b = g;
            nb = gzn;
        }
        csac_volume *vol = NULL;
        st = run_buffer(ctx, b, nb, t, &vol);
        CHECK(st == CSAC_OK, "%s: %s", V->name, csac_last_error(ctx));
        if (st == CSAC_OK) {
            double d = max_abs_diff(t, t_ref);
            csac_volume_info in;
            csac_volume_get_info(vol, &in);
            if (V->tol <= 2e-5) { /* exact encodings: the same lungs (to float32 pixdim rounding), zoom and tensor */
                CHECK(d <= V->tol, "%s: max |diff| %g > %g", V->name, d, V->tol);
                CHECK(fabs(in.lung_ml / iref.lung_ml - 1) < 1e-6 && fabs(in.grid_zoom / iref.grid_zoom - 1) < 1e-6, "%s: lungs %g mL zoom %g, reference %g mL %g",
                      V->name, in.lung_ml, in.grid_zoom, iref.lung_ml, iref.grid_zoom);
            } else {
                /* uint8/int8 quantisation moves a few voxels across the lung
                 * threshold: the zoom may move by ~1e-4, which shifts samples
                 * near the grid's edge by ~0.01 voxel across sharp edges. */
                double md = 0;
                for (int q = 0; q < NT; q++) md += fabs((double)t[q] - t_ref[q]);
                md /= NT;
                CHECK(fabs(in.grid_zoom / iref.grid_zoom - 1) < 3e-4, "%s: zoom %g vs %g", V->name, in.grid_zoom, iref.grid_zoom);
                CHECK(md <= V->tol / 4 && d <= V->tol + 0.01, "%s: mean |diff| %g (max %g), max %g (max %g)", V->name, md, V->tol / 4, d,
                      V->tol + 0.01);
            }
            if (V->gz) { /* the gzip fast path converts with the pool's threads */
                csac_volume *v3 = NULL;
                CHECK(run_buffer(ctx3, b, nb, t2, &v3) == CSAC_OK, "%s, 3 threads: %s", V->name, csac_last_error(ctx3));
                csac_volume_info in3;
                csac_volume_get_info(v3, &in3);
                CHECK(memcmp(t, t2, sizeof(float) * NT) == 0 && in3.hu_min == in.hu_min && in3.hu_max == in.hu_max && in3.hu_mean == in.hu_mean,
                      "%s: 3 threads differ from 1", V->name);
                csac_volume_free(v3);
            }
            CHECK(in.datatype == V->dt, "%s: datatype %d", V->name, in.datatype);
            CHECK(in.nifti_version == V->ver, "%s: version %d", V->name, in.nifti_version);
            CHECK(!strcmp(in.affine_source, V->scode ? "sform" : V->qcode ? "qform" : "pixdim"), "%s: affine from %s", V->name, in.affine_source);
            if (V->nvol > 1) CHECK(csac_volume_n_warnings(vol) == 1 && strstr(csac_volume_warning(vol, 0), "2 volumes"), "%s: warning '%s'", V->name, csac_volume_warning(vol, 0));
            else CHECK(csac_volume_n_warnings(vol) == 0, "%s: unexpected warning '%s'", V->name, csac_volume_warning(vol, 0));
            if (V->map.flip[0] == 1 && V->map.flip[1] == 1 && V->map.perm[0] == 0) CHECK(!strcmp(in.orientation, "LPS"), "%s: orientation %s", V->name, in.orientation);
            if (V->map.flip[0] == 1 && V->map.flip[1] == 0 && V->map.perm[0] == 0) CHECK(!strcmp(in.orientation, "LAS"), "%s: orientation %s", V->name, in.orientation);
            if (V->map.perm[0] == 2) CHECK(!strcmp(in.orientation, "SLA"), "%s: orientation %s", V->name, in.orientation);
            dts_seen |= V->dt;
        }
        csac_volume_free(vol);
        free(b);
        free(enc);
        if (hu4 != hu) free(hu4);
        free(hu);
    }
    CHECK(dts_seen == (DT_UINT8 | DT_INT8 | DT_INT16 | DT_UINT16 | DT_INT32 | DT_UINT32 | DT_FLOAT32 | DT_FLOAT64), "datatypes covered: %#x", dts_seen);

    /* oblique: the phantom sampled on a rotated grid, as sform and as qform */
    {
        double ax = 9 * M_PI / 180, az = 14 * M_PI / 180;
        double Rz[3][3] = {{cos(az), -sin(az), 0}, {sin(az), cos(az), 0}, {0, 0, 1}};
        double Rx[3][3] = {{1, 0, 0}, {0, cos(ax), -sin(ax)}, {0, sin(ax), cos(ax)}};
        double Rm[3][3], A[4][4];
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++) { Rm[r][c] = 0; for (int k = 0; k < 3; k++) Rm[r][c] += Rz[r][k] * Rx[k][c]; }
        const double sp3[3] = {SX, SY, SZ}, ctr[3] = {0.5 * (NX - 1), 0.5 * (NY - 1), 0.5 * (NZ - 1)};
        memset(A, 0, sizeof A);
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++) A[r][c] = Rm[r][c] * sp3[c];
            A[r][3] = -(A[r][0] * ctr[0] + A[r][1] * ctr[1] + A[r][2] * ctr[2]);
        }
        A[3][3] = 1;
        float *hu = malloc(sizeof(float) * NX * NY * NZ);
        for (int k = 0; k < NZ; k++)
            for (int j = 0; j < NY; j++)
                for (int i = 0; i < NX; i++)
                    hu[i + NX * (j + NY * k)] = phantom(A[0][0] * i + A[0][1] * j + A[0][2] * k + A[0][3], A[1][0] * i + A[1][1] * j + A[1][2] * k + A[1][3],
                                                        A[2][0] * i + A[2][1] * j + A[2][2] * k + A[2][3]);
        void *enc = mk_encode(hu, (size_t)NX * NY * NZ, DT_INT16, 1, -1024);
        float *t_s = malloc(sizeof(float) * NT);
        for (int q = 0; q < 2; q++) {
            mk_spec sp = mk_default(NX, NY, NZ, DT_INT16);
            sp.slope = 1; sp.inter = -1024;
            memcpy(sp.affine, A, sizeof A);
            sp.sform_code = q == 0 ? 1 : 0;
            sp.qform_code = q == 0 ? 0 : 1;
            size_t nb;
            uint8_t *b = mk_nifti(&sp, enc, (size_t)NX * NY * NZ * 2, &nb);
            st = run_buffer(ctx, b, nb, q == 0 ? t_s : t, NULL);
            CHECK(st == CSAC_OK, "oblique %s: %s", q ? "qform" : "sform", csac_last_error(ctx));
            free(b);
        }
        double d = max_abs_diff(t, t_s), mad;
        CHECK(d <= 1e-4, "oblique: sform vs qform max |diff| %g", d);
        double c = corr(t_s, t_ref, &mad);
        printf("oblique vs axis-aligned: correlation %.4f, mean |diff| %.4f\n", c, mad);
        CHECK(c > 0.97, "oblique vs axis-aligned: correlation %.4f", c);
        CHECK(mad < 0.02, "oblique vs axis-aligned: mean |diff| %.4f", mad);
        free(t_s);
        free(enc);
        free(hu);
    }

    /* patient size: the same voxels with every spacing scaled by k are a
     * patient k times as large. Unclipped, the zoom undoes that exactly (the
     * grid lands on the same voxels: the same tensor); outside 2150-8200 mL
     * it stops at the clip and warns. k 0.95 / 0.7 / 1.5 keep or change the
     * decimation factors (2, 2, 1 at 1.4, 1.4, 2.5 mm). Relative 1e-6: the
     * header stores spacings as float32; 1 % at k 1.5, which decimates less
     * and so measures the lungs on a finer volume. */
    {
        const double ks[3] = {0.95, 0.7, 1.5};
        for (int q = 0; q < 3; q++) {
            double k = ks[q], A[4][4];
            memcpy(A, R, sizeof A);
            for (int r = 0; r < 3; r++) { A[r][r] *= k; A[r][3] *= k; }
            mk_spec sp = mk_default(NX, NY, NZ, DT_FLOAT32);
            memcpy(sp.affine, A, sizeof A);
            size_t nb;
            uint8_t *b = mk_nifti(&sp, ref, sizeof(float) * NX * NY * NZ, &nb);
            csac_volume *v = NULL;
            st = run_buffer(ctx, b, nb, t, &v);
            CHECK(st == CSAC_OK, "spacing x %g: %s", k, csac_last_error(ctx));
            free(b);
            if (st) continue;
            csac_volume_info in;
            csac_volume_get_info(v, &in);
            CHECK(fabs(in.lung_ml / iref.lung_ml / (k * k * k) - 1) < (q == 2 ? 1e-2 : 1e-6), "spacing x %g: lung volume %g, reference %g", k, in.lung_ml, iref.lung_ml);
            int nw = csac_volume_n_warnings(v);
            const char *w = nw ? csac_volume_warning(v, 0) : "";
            if (q == 0) {
                CHECK(fabs(in.grid_zoom * k / iref.grid_zoom - 1) < 1e-6, "spacing x %g: zoom %g, want %g", k, in.grid_zoom, iref.grid_zoom / k);
                double d = max_abs_diff(t, t_ref);
                CHECK(d <= 1e-4, "spacing x %g: the same tensor (max |diff| %g)", k, d);
                CHECK(nw == 0, "spacing x %g: unexpected warning '%s'", k, w);
            } else {
                double want = q == 1 ? CSAC_GRID_ZOOM_MAX : CSAC_GRID_ZOOM_MIN;
                CHECK(in.grid_zoom == want, "spacing x %g: zoom %g, want the clip %g", k, in.grid_zoom, want);
                CHECK(nw == 1 && strstr(w, q == 1 ? "are smaller than the model was trained on" : "are larger than the model was trained on"),
                      "spacing x %g: warning '%s'", k, w);
                csac_grid gr;
                CHECK(csac_preprocess(ctx, v, t, &gr) == CSAC_OK && fabs(gr.grid2world[2][2] - CSAC_GRID_DZ_MM / want) < 1e-12,
                      "spacing x %g: grid z spacing %g", k, gr.grid2world[2][2]);
            }
            csac_volume_free(v);
        }
    }

    /* NIfTI writer round trip: data and geometry */
    {
        csac_grid grid;
        CHECK(csac_preprocess(ctx, vref, t, &grid) == CSAC_OK, "preprocess");
        csac_nifti_out img = {.data = t, .dim = {CSAC_GRID_W, CSAC_GRID_H, CSAC_GRID_D}, .xform_code = 2, .descrip = "test"};
        memcpy(img.affine, grid.grid2world, sizeof img.affine);
        for (int q = 0; q < 3; q++) {
            img.gzip = q == 1;
            void *wb = NULL;
            size_t wn = 0;
            csac_volume *back = NULL;
            const char *path = "/tmp/csac_test_write.nii.gz";
            if (q < 2) {
                st = csac__nifti_write_buffer(ctx, &img, &wb, &wn);
                CHECK(st == CSAC_OK, "write buffer: %s", csac_last_error(ctx));
                CHECK(q == 0 ? wn == 352 + 4 * (size_t)NT : wn < 352 + 4 * (size_t)NT, "written size %zu", wn);
                st = csac_volume_read_buffer(ctx, wb, wn, &back);
            } else {
                img.gzip = 1;
                st = csac__nifti_write_file(ctx, &img, path);
                CHECK(st == CSAC_OK, "write file: %s", csac_last_error(ctx));
                st = csac_volume_read_file(ctx, path, &back);
                remove(path);
            }
            CHECK(st == CSAC_OK, "read back %d: %s", q, csac_last_error(ctx));
            if (st == CSAC_OK) {
                CHECK(memcmp(csac_volume_data(back), t, sizeof(float) * NT) == 0, "round trip %d: data differ", q);
                csac_volume_info in;
                csac_volume_get_info(back, &in);
                double e = 0;
                for (int r = 0; r < 3; r++)
                    for (int c = 0; c < 4; c++) e = fmax(e, fabs(in.vox2world[r][c] - grid.grid2world[r][c]));
                CHECK(e < 1e-3, "round trip %d: affine differs by %g", q, e);
                CHECK(!strcmp(in.orientation, "LPS"), "model grid orientation %s, expected LPS (w to patient left, h to posterior, d to superior)", in.orientation);
                CHECK(in.qform_code == 2 && in.sform_code == 2, "codes %d %d", in.qform_code, in.sform_code);
            }
            csac_volume_free(back);
            free(wb);
        }
        /* grid2vox = world2vox . grid2world: the grid centre maps into the volume at the lung centre */
        double ci[3];
        for (int r = 0; r < 3; r++) ci[r] = grid.grid2vox[r][0] * 63.5 + grid.grid2vox[r][1] * 63.5 + grid.grid2vox[r][2] * 31.5 + grid.grid2vox[r][3];
        double wc[3];
        const double(*V)[4] = vref->info.vox2world;
        for (int r = 0; r < 3; r++) wc[r] = V[r][0] * ci[0] + V[r][1] * ci[1] + V[r][2] * ci[2] + V[r][3];
        for (int r = 0; r < 3; r++) CHECK_NEAR(wc[r], vref->centre_world[r], 1e-6, "grid2vox maps the grid centre to the lung centre");
    }
    csac_volume_free(vref);
    free(ref); free(t_ref); free(t); free(t2);
    csac_free(ctx);
    csac_free(ctx3);
    return test_summary("test_preprocess");
}
