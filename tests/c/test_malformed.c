/* Proves that malformed or wrong inputs (generated here, in memory, from one
 * small valid NIfTI file) are refused with their own status code and a
 * message naming the problem, never crash, and leak nothing (this program
 * also runs under AddressSanitizer + UBSan, and as wasm under node): wrong
 * formats by signature, truncation of header, data and gzip stream, corrupt
 * gzip data and checksum, impossible dims, size limits (voxels, dims, file
 * and decompressed bytes; a gzip bomb stops at the header), unsupported
 * datatypes, bad offsets, scaling and geometry, non-finite voxels. It also
 * proves the out-of-distribution warnings (MR-like, normalised, short
 * coverage, thick slices) and that a valid file next to each case loads.
 * With --table it also prints each case as "T<tab>kind<tab>input<tab>status
 * <tab>message" lines: tests/node/bad_input.test.mjs checks that native and
 * wasm print the same rows and that docs/bad-input.md holds exactly them. */
#include "csac.h"
#include "nifti_make.h"
#include "test.h"

#include <stdio.h>
#include <string.h>

enum { NX = 24, NY = 20, NZ = 40 };

typedef struct {
    uint8_t *b;
    size_t n;
} blob;

static float *base_hu(void) {
    float *hu = malloc(sizeof(float) * NX * NY * NZ);
    for (int k = 0; k < NZ; k++)
        for (int j = 0; j < NY; j++)
            for (int i = 0; i < NX; i++) {
                double x = (i - NX / 2.0) / (NX / 2.5), y = (j - NY / 2.0) / (NY / 2.5);
                hu[i + NX * (j + NY * k)] = x * x + y * y < 1 ? (float)(40 + (i + j + k) % 7) : -1000.0f;
            }
    return hu;
}

static mk_spec base_spec(int dt) {
    mk_spec s = mk_default(NX, NY, NZ, dt);
    s.affine[0][0] = 10; s.affine[1][1] = 10; s.affine[2][2] = 7; /* 280 mm of z: no coverage warning */
    return s;
}

static blob make(const mk_spec *s, const float *hu, size_t nvox) {
    void *enc = mk_encode(hu, nvox, s->datatype, s->slope, s->inter);
    blob r;
    r.b = mk_nifti(s, enc, nvox * (size_t)mk_dtsize(s->datatype), &r.n);
    free(enc);
    return r;
}

static blob gz(blob in) {
    blob r;
    r.b = mk_gzip(in.b, in.n, &r.n);
    free(in.b);
    return r;
}

static int n_cases;
static int table; /* --table: machine-readable rows too */

static void row(const char *kind, const char *what, const char *status, const char *msg) {
    if (table) printf("T\t%s\t%s\t%s\t%s\n", kind, what, status, msg);
}

/* One case: status and a phrase of the message; the output stays NULL. */
static void expect(csac_ctx *ctx, const char *what, blob f, int status, const char *phrase) {
    csac_volume *vol = (csac_volume *)(uintptr_t)1; /* must be reset to NULL */
    int st = csac_volume_read_buffer(ctx, f.b, f.n, &vol);
    const char *msg = csac_last_error(ctx);
    CHECK(st == status, "%s: status %s, expected %s (%s)", what, csac_status_name(st), csac_status_name(status), msg);
    CHECK(strstr(msg, phrase) != NULL, "%s: message '%s' lacks '%s'", what, msg, phrase);
    CHECK(vol == NULL, "%s: output not NULL on failure", what);
    if (st == CSAC_OK) csac_volume_free(vol);
    printf("  %-44s %-20s %s\n", what, csac_status_name(st), msg);
    row("error", what, csac_status_name(st), msg);
    free(f.b);
    n_cases++;
}

static void expect_warning(csac_ctx *ctx, const char *what, blob f, const char *phrase) {
    csac_volume *vol = NULL;
    int st = csac_volume_read_buffer(ctx, f.b, f.n, &vol);
    CHECK(st == CSAC_OK, "%s: %s", what, csac_last_error(ctx));
    int found = 0;
    for (int i = 0; i < csac_volume_n_warnings(vol); i++)
        if (strstr(csac_volume_warning(vol, i), phrase) && !found++) row("warning", what, "CSAC_OK", csac_volume_warning(vol, i));
    CHECK(found, "%s: no warning with '%s' (first: '%s')", what, phrase, csac_volume_warning(vol, 0) ? csac_volume_warning(vol, 0) : "none");
    csac_volume_free(vol);
    free(f.b);
}

static blob raw_bytes(const void *p, size_t n) {
    blob r;
    r.b = malloc(n ? n : 1);
    memcpy(r.b, p, n);
    r.n = n;
    return r;
}

int main(int argc, char **argv) {
    table = argc > 1 && !strcmp(argv[1], "--table");
    csac_params p = csac_default_params();
    csac_ctx *ctx = NULL;
    CHECK(csac_init(&p, &ctx) == CSAC_OK, "init");
    float *hu = base_hu();
    const size_t NV = (size_t)NX * NY * NZ;

    /* the valid base loads, plain and gzipped */
    {
        mk_spec s = base_spec(DT_INT16);
        blob f = make(&s, hu, NV);
        csac_volume *vol = NULL;
        CHECK(csac_volume_read_buffer(ctx, f.b, f.n, &vol) == CSAC_OK, "base: %s", csac_last_error(ctx));
        csac_volume_free(vol);
        f = gz(f);
        CHECK(csac_volume_read_buffer(ctx, f.b, f.n, &vol) == CSAC_OK, "base gz: %s", csac_last_error(ctx));
        csac_volume_free(vol);
        free(f.b);
    }

    /* ---- not NIfTI at all ---- */
    expect(ctx, "empty input", raw_bytes("", 0), CSAC_E_FORMAT, "empty");
    expect(ctx, "3 bytes", raw_bytes("abc", 3), CSAC_E_FORMAT, "only 3 bytes");
    {
        char text[400];
        memset(text, 'a', sizeof text);
        memcpy(text, "patient,label\n", 14);
        expect(ctx, "a CSV text file", raw_bytes(text, sizeof text), CSAC_E_FORMAT, "starts with text");
        uint8_t dcm[400] = {0};
        memcpy(dcm + 128, "DICM", 4);
        expect(ctx, "DICOM", raw_bytes(dcm, sizeof dcm), CSAC_E_FORMAT, "DICOM");
        blob g = gz(raw_bytes(dcm, sizeof dcm));
        expect(ctx, "gzipped DICOM", g, CSAC_E_FORMAT, "gzip-compressed a DICOM");
        uint8_t png[400] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        expect(ctx, "PNG", raw_bytes(png, sizeof png), CSAC_E_FORMAT, "PNG");
        uint8_t zip[400] = {'P', 'K', 3, 4};
        expect(ctx, "zip", raw_bytes(zip, sizeof zip), CSAC_E_FORMAT, "zip");
        char nrrd[400] = "NRRD0004\ntype: short\n";
        expect(ctx, "NRRD", raw_bytes(nrrd, sizeof nrrd), CSAC_E_FORMAT, "NRRD");
        char mha[400] = "ObjectType = Image\nNDims = 3\n";
        expect(ctx, "MetaImage", raw_bytes(mha, sizeof mha), CSAC_E_FORMAT, "MetaImage");
        uint8_t bz[400] = {'B', 'Z', 'h', '9'};
        expect(ctx, "bzip2", raw_bytes(bz, sizeof bz), CSAC_E_FORMAT, "bzip2");
    }

    /* ---- header ---- */
    mk_spec s0 = base_spec(DT_INT16);
    {
        blob f = make(&s0, hu, NV);
        f.n = 200;
        expect(ctx, "header cut at 200 bytes", f, CSAC_E_TRUNCATED, "header needs 348");
        f = make(&s0, hu, NV);
        f.n = 100;
        expect(ctx, "gzip of a header cut at 100 bytes", gz(f), CSAC_E_TRUNCATED, "header needs 348");
        mk_spec s2 = s0;
        s2.ver = 2;
        f = make(&s2, hu, NV);
        f.n = 400;
        expect(ctx, "NIfTI-2 header cut at 400 bytes", f, CSAC_E_TRUNCATED, "header needs 540");
        f = make(&s0, hu, NV);
        memset(f.b + 344, 0, 4);
        expect(ctx, "Analyze 7.5 (no magic)", f, CSAC_E_FORMAT, "magic");
        f = make(&s0, hu, NV);
        memcpy(f.b + 344, "ni1", 4);
        expect(ctx, "two-file magic ni1", f, CSAC_E_UNSUPPORTED, ".hdr/.img");
        f = make(&s2, hu, NV);
        f.b[8] = '\n'; /* text-mode transfer damage */
        expect(ctx, "NIfTI-2 magic damaged", f, CSAC_E_FORMAT, "magic");
    }
    {
        struct { const char *what; int idx; int64_t val; int status; const char *phrase; } dims[] = {
            {"dim[0] = 0", 0, 0, CSAC_E_FORMAT, "dim[0] = 0"},
            {"dim[0] = 2 (2D)", 0, 2, CSAC_E_UNSUPPORTED, "2D image"},
            {"dim[3] = 1 (one slice)", 3, 1, CSAC_E_UNSUPPORTED, "dim[3] = 1"},
            {"dim[2] = 0", 2, 0, CSAC_E_FORMAT, "dim[2] = 0: every axis needs at least 1 voxel"},
            {"dim[1] = -4", 1, -4, CSAC_E_FORMAT, "dim[1] = -4"},
            {"dim[1] = 5000 > max_dim", 1, 5000, CSAC_E_LIMIT, "max_dim"},
        };
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
            mk_spec s = s0;
            s.dim[dims[d].idx] = dims[d].val;
            blob f = make(&s0, hu, NV);
            uint8_t hdr[540];
            mk_header(&s, hdr);
            memcpy(f.b, hdr, 348);
            expect(ctx, dims[d].what, f, dims[d].status, dims[d].phrase);
        }
        mk_spec s = s0;
        s.dim[0] = 4;
        s.dim[4] = -1;
        blob f = make(&s0, hu, NV);
        uint8_t hdr[540];
        mk_header(&s, hdr);
        memcpy(f.b, hdr, 348);
        expect(ctx, "dim[4] = -1", f, CSAC_E_FORMAT, "dim[4] = -1");
        /* dim[0] = 9: no valid byte order gives 1..7 */
        f = make(&s0, hu, NV);
        int16_t nine = 9;
        memcpy(f.b + 40, &nine, 2);
        expect(ctx, "dim[0] = 9", f, CSAC_E_FORMAT, "dim[0] = 9");
    }
    /* ---- size limits ---- */
    {
        csac_params q = csac_default_params();
        q.max_voxels = 1000;
        csac_ctx *c2 = NULL;
        csac_init(&q, &c2);
        expect(c2, "voxels > max_voxels", make(&s0, hu, NV), CSAC_E_LIMIT, "max_voxels = 1000");
        csac_free(c2);
        q = csac_default_params();
        q.max_decompressed_bytes = 10000;
        csac_init(&q, &c2);
        expect(c2, "bytes > max_decompressed_bytes", gz(make(&s0, hu, NV)), CSAC_E_LIMIT, "max_decompressed_bytes = 10000");
        csac_free(c2);
        q = csac_default_params();
        q.max_file_bytes = 1000;
        csac_init(&q, &c2);
        expect(c2, "file > max_file_bytes", make(&s0, hu, NV), CSAC_E_LIMIT, "max_file_bytes = 1000");
        csac_free(c2);
        /* gzip bomb: a NIfTI-2 header declaring 4000^3 float64 (512 GB) in a tiny file */
        mk_spec s = s0;
        s.ver = 2;
        s.datatype = DT_FLOAT64;
        s.dim[1] = s.dim[2] = s.dim[3] = 4000;
        uint8_t hdr[600] = {0};
        mk_header(&s, hdr);
        expect(ctx, "gzip bomb header (4000^3 float64)", gz(raw_bytes(hdr, 600)), CSAC_E_LIMIT, "max_voxels");
        s.dim[1] = s.dim[2] = 4000;
        s.dim[3] = 16; /* 256 M voxels: within max_voxels, 2 GB of float64 */
        mk_header(&s, hdr);
        expect(ctx, "gzip bomb header (2 GB of data)", gz(raw_bytes(hdr, 600)), CSAC_E_LIMIT, "max_decompressed_bytes");
    }
    /* ---- datatypes ---- */
    {
        const struct { int dt; const char *name; } bad[] = {{DT_RGB24, "RGB24"}, {DT_COMPLEX64, "COMPLEX64"}, {DT_INT64, "INT64"}, {DT_BINARY, "BINARY"}, {9999, "unknown"}};
        for (size_t d = 0; d < sizeof bad / sizeof bad[0]; d++) {
            mk_spec s = s0;
            blob f = make(&s0, hu, NV);
            s.datatype = bad[d].dt;
            uint8_t hdr[540];
            mk_header(&s, hdr);
            memcpy(f.b, hdr, 348);
            char what[64];
            snprintf(what, sizeof what, "datatype %s", bad[d].name);
            expect(ctx, what, f, CSAC_E_UNSUPPORTED, bad[d].name);
        }
    }
    /* ---- offsets and truncated data ---- */
    {
        mk_spec s = s0;
        s.vox_offset = 100;
        uint8_t hdr[540];
        blob f = make(&s0, hu, NV);
        mk_header(&s, hdr);
        memcpy(f.b, hdr, 348);
        expect(ctx, "vox_offset = 100 (inside the header)", f, CSAC_E_FORMAT, "vox_offset = 100");
        f = make(&s0, hu, NV);
        float nanv = NAN;
        memcpy(f.b + 108, &nanv, 4);
        expect(ctx, "vox_offset = NaN", f, CSAC_E_FORMAT, "vox_offset = nan");
        f = make(&s0, hu, NV);
        float far = 1e9f;
        memcpy(f.b + 108, &far, 4);
        expect(ctx, "vox_offset past the end", f, CSAC_E_TRUNCATED, "truncated");
        f = make(&s0, hu, NV);
        f.n -= 1000;
        expect(ctx, "data cut short (.nii)", f, CSAC_E_TRUNCATED, "the file has");
        f = gz(make(&s0, hu, NV));
        f.n /= 2;
        expect(ctx, "gzip stream cut in half", f, CSAC_E_TRUNCATED, "gzip stream ends");
        f = gz(make(&s0, hu, NV));
        for (size_t i = f.n / 3; i < f.n / 3 + 64; i++) f.b[i] ^= 0x5a;
        expect(ctx, "gzip data corrupted", f, CSAC_E_FORMAT, "corrupt gzip");
        f = gz(make(&s0, hu, NV));
        f.b[f.n - 6] ^= 0xff; /* CRC-32 in the trailer */
        expect(ctx, "gzip checksum wrong", f, CSAC_E_FORMAT, "checksum");
        f = gz(make(&s0, hu, NV));
        memset(f.b, 0x1f, 1);
        f.b[3] = 0xff; /* reserved gzip flags */
        expect(ctx, "gzip header invalid", f, CSAC_E_FORMAT, "corrupt gzip");
    }
    /* ---- scaling, geometry, values ---- */
    {
        mk_spec s = s0;
        s.slope = INFINITY;
        expect(ctx, "scl_slope = inf", make(&s, hu, NV), CSAC_E_DATA, "scl_slope = inf");
        mk_spec si = base_spec(DT_INT32);
        blob f = make(&si, hu, NV);
        float big = 1e38f;
        memcpy(f.b + 112, &big, 4); /* scl_slope: HU 40 x 1e38 overflows float */
        expect(ctx, "scaling overflows float", f, CSAC_E_DATA, "after scaling");
        mk_spec sf = base_spec(DT_FLOAT32);
        f = make(&sf, hu, NV);
        float nanv = NAN;
        memcpy(f.b + 352 + 4 * 777, &nanv, 4);
        expect(ctx, "NaN voxel (float32)", f, CSAC_E_DATA, "voxel (9, 12, 1) is NaN");
        mk_spec sd = base_spec(DT_FLOAT64);
        f = make(&sd, hu, NV);
        double inf = INFINITY;
        memcpy(f.b + 352 + 8 * 5, &inf, 8);
        expect(ctx, "infinite voxel (float64)", f, CSAC_E_DATA, "infinite");
        mk_spec sg = s0;
        sg.affine[0][1] = sg.affine[0][0]; sg.affine[1][1] = sg.affine[1][0] = 0; sg.affine[2][1] = sg.affine[2][0]; /* j = i */
        sg.qform_code = 0;
        expect(ctx, "singular sform (two equal columns)", make(&sg, hu, NV), CSAC_E_FORMAT, "singular");
        mk_spec sz = s0;
        sz.affine[1][1] = 0;
        sz.qform_code = 0;
        expect(ctx, "sform column of length 0", make(&sz, hu, NV), CSAC_E_FORMAT, "spacing along j is 0 mm");
        mk_spec sb = s0;
        sb.affine[0][0] = 500;
        expect(ctx, "absurd spacing 500 mm", make(&sb, hu, NV), CSAC_E_FORMAT, "plausible");
        f = make(&s0, hu, NV);
        memcpy(f.b + 280, &nanv, 4); /* srow_x[0] */
        expect(ctx, "sform with NaN", f, CSAC_E_FORMAT, "srow_x[0] = nan");
        mk_spec sp = s0;
        sp.sform_code = 0;
        sp.qform_code = 0;
        f = make(&sp, hu, NV);
        memcpy(f.b + 84, &nanv, 4); /* pixdim[2] */
        expect(ctx, "pixdim[2] = NaN (no sform)", f, CSAC_E_FORMAT, "pixdim[2] = nan");
    }
    /* ---- arguments and files ---- */
    {
        csac_volume *vol = NULL;
        CHECK(csac_volume_read_buffer(ctx, NULL, 10, &vol) == CSAC_E_ARG && !vol, "NULL buffer");
        CHECK(csac_volume_read_file(ctx, NULL, &vol) == CSAC_E_ARG, "NULL path");
        int st = csac_volume_read_file(ctx, "/nonexistent/scan.nii.gz", &vol);
        CHECK(st == CSAC_E_IO && strstr(csac_last_error(ctx), "cannot open"), "missing file: %s", csac_last_error(ctx));
        row("error", "a path that does not exist (CLI, node)", csac_status_name(st), csac_last_error(ctx));
        st = csac_volume_read_file(ctx, "/tmp", &vol);
        CHECK(st == CSAC_E_IO && strstr(csac_last_error(ctx), "directory"), "directory: %s", csac_last_error(ctx));
        row("error", "a directory given as the file (CLI, node)", csac_status_name(st), csac_last_error(ctx));
        CHECK(csac_preprocess(ctx, NULL, NULL, NULL) == CSAC_E_ARG, "preprocess NULL");
        n_cases += 4;
    }
    printf("%d malformed inputs refused\n", n_cases);
    CHECK(n_cases >= 25, "only %d malformed cases", n_cases);

    /* ---- warnings: loads, but says why the result is doubtful ---- */
    {
        float *v = malloc(sizeof(float) * NV);
        for (size_t t = 0; t < NV; t++) v[t] = hu[t] < -500 ? 0 : 900 + (float)(t % 3000); /* MR-like */
        mk_spec s = base_spec(DT_FLOAT32);
        expect_warning(ctx, "MR-like intensities", make(&s, v, NV), "MR");
        for (size_t t = 0; t < NV; t++) v[t] = (hu[t] + 1000) / 1400; /* normalised 0..1 */
        expect_warning(ctx, "normalised intensities", make(&s, v, NV), "normalised");
        mk_spec sz = s0;
        sz.affine[2][2] = 2; /* 40 slices x 2 mm = 80 mm */
        expect_warning(ctx, "short z coverage", make(&sz, hu, NV), "covers only 80 mm");
        mk_spec st = s0;
        st.affine[2][2] = 10;
        expect_warning(ctx, "10 mm slices", make(&st, hu, NV), "thicker than 8 mm");
        expect_warning(ctx, "no lungs", make(&s0, hu, NV), "no lungs found");
        /* a gzip bomb after valid data: only the declared bytes are inflated */
        blob f = make(&s0, hu, NV);
        size_t extra = 64u << 20;
        uint8_t *big = calloc(1, f.n + extra);
        memcpy(big, f.b, f.n);
        free(f.b);
        blob g;
        g.b = mk_gzip(big, f.n + extra, &g.n);
        free(big);
        csac_volume *vol = NULL;
        CHECK(csac_volume_read_buffer(ctx, g.b, g.n, &vol) == CSAC_OK, "valid data followed by 64 MB of zeros: %s", csac_last_error(ctx));
        csac_volume_free(vol);
        free(g.b);
        free(v);
    }
    free(hu);
    csac_free(ctx);
    return test_summary("test_malformed");
}
