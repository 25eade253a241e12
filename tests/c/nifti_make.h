/* nifti_make.h - the tests' own NIfTI-1/2 builder (in memory), written from
 * the format specification with libnifti's header structs, independently of
 * the reader under test. Header-only; not a test program by itself. */
#ifndef CSAC_NIFTI_MAKE_H
#define CSAC_NIFTI_MAKE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nifti2_io.h"
#include "zlib.h"

typedef struct {
    int ver;              /* 1 or 2                                 */
    int datatype;
    int64_t dim[8];       /* dim[0] = number of dimensions          */
    double affine[4][4];  /* voxel -> world, written as sform/qform */
    int qform_code, sform_code;
    double slope, inter;
    int swap;             /* write big-endian (opposite of host)    */
    double vox_offset;    /* 0: 352 / 544                           */
} mk_spec;

static inline int mk_dtsize(int dt) {
    switch (dt) {
    case DT_UINT8: case DT_INT8: return 1;
    case DT_INT16: case DT_UINT16: return 2;
    case DT_INT32: case DT_UINT32: case DT_FLOAT32: return 4;
    case DT_FLOAT64: case DT_COMPLEX64: case DT_INT64: return 8;
    case DT_RGB24: return 3;
    default: return 2;
    }
}

static inline mk_spec mk_default(int64_t nx, int64_t ny, int64_t nz, int dt) {
    mk_spec s;
    memset(&s, 0, sizeof s);
    s.ver = 1;
    s.datatype = dt;
    s.dim[0] = 3; s.dim[1] = nx; s.dim[2] = ny; s.dim[3] = nz;
    for (int i = 4; i < 8; i++) s.dim[i] = 1;
    for (int i = 0; i < 4; i++) s.affine[i][i] = 1;
    s.sform_code = 1;
    s.qform_code = 1;
    return s;
}

/* Header bytes (348 or 540) for spec s, in the byte order requested. */
static inline size_t mk_header(const mk_spec *s, uint8_t *out) {
    nifti_dmat44 A;
    for (int r = 0; r < 4; r++) for (int c = 0; c < 4; c++) A.m[r][c] = s->affine[r][c];
    double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(A, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    if (s->ver == 1) {
        nifti_1_header h;
        memset(&h, 0, sizeof h);
        h.sizeof_hdr = 348;
        for (int i = 0; i < 8; i++) h.dim[i] = (short)s->dim[i];
        h.datatype = (short)s->datatype;
        h.bitpix = (short)(8 * mk_dtsize(s->datatype));
        h.pixdim[0] = (float)qfac; h.pixdim[1] = (float)dx; h.pixdim[2] = (float)dy; h.pixdim[3] = (float)dz;
        h.vox_offset = s->vox_offset ? (float)s->vox_offset : 352;
        h.scl_slope = (float)s->slope; h.scl_inter = (float)s->inter;
        h.qform_code = (short)s->qform_code; h.sform_code = (short)s->sform_code;
        h.quatern_b = (float)qb; h.quatern_c = (float)qc; h.quatern_d = (float)qd;
        h.qoffset_x = (float)qx; h.qoffset_y = (float)qy; h.qoffset_z = (float)qz;
        for (int c = 0; c < 4; c++) { h.srow_x[c] = (float)A.m[0][c]; h.srow_y[c] = (float)A.m[1][c]; h.srow_z[c] = (float)A.m[2][c]; }
        h.xyzt_units = NIFTI_UNITS_MM;
        memcpy(h.magic, "n+1", 4);
        if (s->swap) nifti_swap_as_nifti1(&h);
        memcpy(out, &h, 348);
        return 348;
    }
    nifti_2_header h;
    memset(&h, 0, sizeof h);
    h.sizeof_hdr = 540;
    memcpy(h.magic, "n+2\0\r\n\032\n", 8);
    for (int i = 0; i < 8; i++) h.dim[i] = s->dim[i];
    h.datatype = (int16_t)s->datatype;
    h.bitpix = (int16_t)(8 * mk_dtsize(s->datatype));
    h.pixdim[0] = qfac; h.pixdim[1] = dx; h.pixdim[2] = dy; h.pixdim[3] = dz;
    h.vox_offset = s->vox_offset ? (int64_t)s->vox_offset : 544;
    h.scl_slope = s->slope; h.scl_inter = s->inter;
    h.qform_code = s->qform_code; h.sform_code = s->sform_code;
    h.quatern_b = qb; h.quatern_c = qc; h.quatern_d = qd;
    h.qoffset_x = qx; h.qoffset_y = qy; h.qoffset_z = qz;
    for (int c = 0; c < 4; c++) { h.srow_x[c] = A.m[0][c]; h.srow_y[c] = A.m[1][c]; h.srow_z[c] = A.m[2][c]; }
    h.xyzt_units = NIFTI_UNITS_MM;
    if (s->swap) nifti_swap_as_nifti2(&h);
    memcpy(out, &h, 540);
    return 540;
}

/* A whole .nii in memory: header, zero extension bytes up to vox_offset,
 * then data (already encoded, host order; swapped here if s->swap). */
static inline uint8_t *mk_nifti(const mk_spec *s, const void *data, size_t data_bytes, size_t *n) {
    uint8_t hdr[540];
    size_t hs = mk_header(s, hdr);
    size_t off = s->vox_offset ? (size_t)s->vox_offset : hs + 4;
    uint8_t *b = calloc(1, off + data_bytes + 1);
    if (!b) return NULL;
    memcpy(b, hdr, hs);
    if (data_bytes) memcpy(b + off, data, data_bytes);
    int sz = mk_dtsize(s->datatype);
    if (s->swap) {
        if (sz == 2) nifti_swap_2bytes((int64_t)(data_bytes / 2), b + off);
        if (sz == 4) nifti_swap_4bytes((int64_t)(data_bytes / 4), b + off);
        if (sz == 8) nifti_swap_8bytes((int64_t)(data_bytes / 8), b + off);
    }
    *n = off + data_bytes;
    return b;
}

/* gzip (RFC 1952) of a buffer at a zlib level and strategy, malloc'd, NULL
 * on failure (also used by the fuzz harnesses); flush_every > 0:
 * a Z_SYNC_FLUSH (an empty stored block, as pigz writes between its chunks)
 * after every flush_every input bytes. */
static inline uint8_t *mk_gzip_ex(const uint8_t *in, size_t n, int level, int strategy, size_t flush_every, size_t *out_n) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, strategy) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, (uLong)n) + 64 + (flush_every ? (n / flush_every + 1) * 16 + 1024 : 0);
    uint8_t *o = malloc(cap);
    if (!o) { deflateEnd(&z); return NULL; }
    z.next_out = o;
    z.avail_out = (uInt)cap;
    int r = Z_OK;
    size_t at = 0;
    do {
        size_t step = flush_every && n - at > flush_every ? flush_every : n - at;
        z.next_in = (Bytef *)(uintptr_t)(in + at);
        z.avail_in = (uInt)step;
        at += step;
        r = deflate(&z, at < n ? Z_SYNC_FLUSH : Z_FINISH);
    } while (r == Z_OK);
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) { free(o); return NULL; }
    return o;
}

/* gzip of a buffer: level 1, one deflate stream. */
static inline uint8_t *mk_gzip(const uint8_t *in, size_t n, size_t *out_n) {
    return mk_gzip_ex(in, n, 1, Z_DEFAULT_STRATEGY, 0, out_n);
}

/* Encodes HU values into datatype dt with HU = stored*slope + inter
 * (slope 0: stored = HU), rounding and clamping to the type's range. */
static inline void *mk_encode(const float *hu, size_t n, int dt, double slope, double inter) {
    void *o = malloc(n * (size_t)mk_dtsize(dt) + 1);
    if (!o) return NULL;
    for (size_t t = 0; t < n; t++) {
        double v = slope != 0 ? (hu[t] - inter) / slope : hu[t];
        double r = floor(v + 0.5);
#define CL(lo, hi) (r < (lo) ? (lo) : r > (hi) ? (hi) : r)
        switch (dt) {
        case DT_UINT8: ((uint8_t *)o)[t] = (uint8_t)CL(0, 255); break;
        case DT_INT8: ((int8_t *)o)[t] = (int8_t)CL(-128, 127); break;
        case DT_INT16: ((int16_t *)o)[t] = (int16_t)CL(-32768, 32767); break;
        case DT_UINT16: ((uint16_t *)o)[t] = (uint16_t)CL(0, 65535); break;
        case DT_INT32: ((int32_t *)o)[t] = (int32_t)CL(-2147483648.0, 2147483647.0); break;
        case DT_UINT32: ((uint32_t *)o)[t] = (uint32_t)CL(0, 4294967295.0); break;
        case DT_FLOAT32: ((float *)o)[t] = (float)v; break;
        case DT_FLOAT64: ((double *)o)[t] = v; break;
        }
#undef CL
    }
    return o;
}

#endif
