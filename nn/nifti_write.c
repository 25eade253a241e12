/* nifti_write.c - float32 NIfTI-1 writer (.nii, or .nii.gz through zlib's
 * deflate) to a file or a memory buffer. Used for the preprocessed tensor and
 * for heatmaps, which must carry the input's exact geometry: the affine goes
 * into the sform and, when it is a rotation times spacings, the qform too.
 * The data is streamed through deflate in chunks: no second copy. */
#include "volume.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nifti2_io.h"
#include "zlib.h"

typedef struct {
    FILE *f;                 /* file sink, or        */
    uint8_t *mem;            /* growing memory sink  */
    size_t len, cap;
    int failed;
} sink_t;

static void sink_put(sink_t *s, const void *p, size_t n) {
    if (s->failed || !n) return;
    if (s->f) {
        if (fwrite(p, 1, n, s->f) != n) s->failed = 1;
        return;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 1 << 16;
        while (cap < s->len + n) cap *= 2;
        uint8_t *m = realloc(s->mem, cap);
        if (!m) { s->failed = 1; return; }
        s->mem = m;
        s->cap = cap;
    }
    memcpy(s->mem + s->len, p, n);
    s->len += n;
}

static int make_header(csac_ctx *ctx, const csac_nifti_out *img, nifti_1_header *h) {
    memset(h, 0, sizeof *h);
    h->sizeof_hdr = 348;
    h->dim[0] = 3;
    for (int a = 0; a < 3; a++) {
        if (img->dim[a] < 1 || img->dim[a] > 32767)
            return csac__fail(ctx, CSAC_E_ARG, "dim[%d] = %lld: NIfTI-1 holds 1..32767 voxels per axis", a + 1, (long long)img->dim[a]);
        h->dim[a + 1] = (short)img->dim[a];
    }
    for (int a = 4; a < 8; a++) h->dim[a] = 1;
    h->datatype = img->data_u8 ? DT_UINT8 : DT_FLOAT32;
    h->bitpix = img->data_u8 ? 8 : 32;
    h->vox_offset = 352;
    h->scl_slope = img->data_u8 ? img->slope : 1;
    h->scl_inter = 0;
    h->xyzt_units = NIFTI_UNITS_MM;
    memcpy(h->magic, "n+1", 4);
    if (img->descrip) snprintf(h->descrip, sizeof h->descrip, "%s", img->descrip);

    if (img->geom) { /* the input's header geometry, field for field */
        const csac__nifti_geom *g = img->geom;
        for (int a = 0; a < 3; a++) h->pixdim[a + 1] = (float)g->pixdim[a];
        h->pixdim[0] = g->qfac < 0 ? -1.0f : 1.0f;
        h->qform_code = (short)g->qform_code;
        h->sform_code = (short)g->sform_code;
        h->quatern_b = (float)g->quatern[0]; h->quatern_c = (float)g->quatern[1]; h->quatern_d = (float)g->quatern[2];
        h->qoffset_x = (float)g->qoffset[0]; h->qoffset_y = (float)g->qoffset[1]; h->qoffset_z = (float)g->qoffset[2];
        for (int c = 0; c < 4; c++) {
            h->srow_x[c] = (float)g->srow[0][c];
            h->srow_y[c] = (float)g->srow[1][c];
            h->srow_z[c] = (float)g->srow[2][c];
        }
        return CSAC_OK;
    }
    nifti_dmat44 A;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) A.m[r][c] = img->affine[r][c];
    for (int a = 0; a < 3; a++) {
        double s = 0;
        for (int r = 0; r < 3; r++) s += A.m[r][a] * A.m[r][a];
        h->pixdim[a + 1] = (float)sqrt(s);
        if (!(h->pixdim[a + 1] > 0) || !isfinite(h->pixdim[a + 1]))
            return csac__fail(ctx, CSAC_E_ARG, "the affine's column %d has length %g: not a usable voxel spacing", a, sqrt(s));
    }
    for (int c = 0; c < 4; c++) {
        h->srow_x[c] = (float)A.m[0][c];
        h->srow_y[c] = (float)A.m[1][c];
        h->srow_z[c] = (float)A.m[2][c];
    }
    h->sform_code = (short)img->xform_code;

    double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(A, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    nifti_dmat44 B = nifti_quatern_to_dmat44(qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac);
    double err = 0;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) err = fmax(err, fabs(B.m[r][c] - A.m[r][c]));
    h->pixdim[0] = (float)qfac;
    if (err < 1e-4) { /* the qform can only hold rotation x spacing (no shear) */
        h->quatern_b = (float)qb; h->quatern_c = (float)qc; h->quatern_d = (float)qd;
        h->qoffset_x = (float)qx; h->qoffset_y = (float)qy; h->qoffset_z = (float)qz;
        h->qform_code = (short)img->xform_code;
    }
    return CSAC_OK;
}

static int write_sink(csac_ctx *ctx, const csac_nifti_out *img, sink_t *s) {
    if (!img || (!img->data && !img->data_u8)) return csac__fail(ctx, CSAC_E_ARG, "nifti write: NULL image");
    nifti_1_header h;
    int st = make_header(ctx, img, &h);
    if (st) return st;
    const uint8_t ext[4] = {0, 0, 0, 0};
    size_t nbytes = (size_t)(img->dim[0] * img->dim[1] * img->dim[2]) * (img->data_u8 ? 1 : sizeof(float));
    const void *data = img->data_u8 ? (const void *)img->data_u8 : (const void *)img->data;
    if (!img->gzip) {
        sink_put(s, &h, sizeof h);
        sink_put(s, ext, 4);
        sink_put(s, data, nbytes); /* little-endian hosts only (x86, wasm, arm) */
    } else {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        /* level 1: a heatmap at full resolution is 100+ MB of floats */
        if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return csac__fail(ctx, CSAC_E_NOMEM, "deflateInit2 failed");
        uint8_t *obuf = malloc(1 << 17);
        if (!obuf) { deflateEnd(&zs); return csac__fail(ctx, CSAC_E_NOMEM, "out of memory"); }
        const struct { const void *p; size_t n; } parts[3] = {{&h, sizeof h}, {ext, 4}, {data, nbytes}};
        for (int part = 0; part < 3 && !s->failed; part++) {
            const uint8_t *p = parts[part].p;
            size_t left = parts[part].n;
            do {
                size_t take = left > (1u << 30) ? (1u << 30) : left;
                zs.next_in = (Bytef *)(uintptr_t)p;
                zs.avail_in = (uInt)take;
                int flush = part == 2 && take == left ? Z_FINISH : Z_NO_FLUSH;
                int r;
                do {
                    zs.next_out = obuf;
                    zs.avail_out = 1 << 17;
                    r = deflate(&zs, flush);
                    sink_put(s, obuf, (1u << 17) - zs.avail_out);
                } while (zs.avail_out == 0 || (flush == Z_FINISH && r != Z_STREAM_END && r >= 0));
                p += take;
                left -= take;
            } while (left > 0);
        }
        free(obuf);
        deflateEnd(&zs);
    }
    if (s->failed) return csac__fail(ctx, s->f ? CSAC_E_IO : CSAC_E_NOMEM, s->f ? "write error" : "out of memory writing NIfTI");
    return CSAC_OK;
}

int csac__nifti_write_file(csac_ctx *ctx, const csac_nifti_out *img, const char *path) {
    if (!path) return csac__fail(ctx, CSAC_E_ARG, "nifti write: NULL path");
    sink_t s = {0};
    s.f = fopen(path, "wb");
    if (!s.f) return csac__fail(ctx, CSAC_E_IO, "cannot create '%s'", path);
    int st = write_sink(ctx, img, &s);
    if (fclose(s.f) != 0 && !st) st = csac__fail(ctx, CSAC_E_IO, "write error on '%s'", path);
    if (st == CSAC_E_IO) csac__fail(ctx, st, "write error on '%s'", path);
    return st;
}

int csac__nifti_write_buffer(csac_ctx *ctx, const csac_nifti_out *img, void **out, size_t *n) {
    if (!out || !n) return csac__fail(ctx, CSAC_E_ARG, "nifti write: NULL output");
    *out = NULL;
    *n = 0;
    sink_t s = {0};
    int st = write_sink(ctx, img, &s);
    if (st) { free(s.mem); return st; }
    *out = s.mem;
    *n = s.len;
    return CSAC_OK;
}
