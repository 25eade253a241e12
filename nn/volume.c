/* volume.c - NIfTI-1/2 reader (.nii, .nii.gz) from a buffer or a file.
 *
 * The header is parsed from the (gunzipped) first bytes and validated here,
 * then libnifti's nifti_convert_n{1,2}hdr2nim builds qto_xyz/sto_xyz with its
 * header rules. Voxels are inflated in chunks straight into the float32 HU
 * volume (peak memory ~ compressed bytes + float volume), and inflation stops
 * at the bytes the first 3D volume needs, so a gzip bomb cannot grow memory.
 *
 * Fast path (gzip_whole): a single-member .nii.gz of 1- or 2-byte voxels is
 * decompressed by libdeflate in one call (~3x faster than zlib) into the tail
 * of the float32 volume and converted in place by the pool's threads, in
 * phases that only overwrite consumed bytes; anything else,
 * and any stream libdeflate rejects, takes the zlib path, which gives every
 * error message. */
#include "volume.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "libdeflate.h"
#include "nifti2_io.h"
#include "pinflate.h"
#include "zlib.h"

#include <sys/stat.h>
#if !defined(__EMSCRIPTEN__) && !defined(_WIN32)
#define CSAC_HAVE_MMAP 1
#include <sys/mman.h>
#endif

enum { CHUNK = 1 << 18 }; /* 256 KiB, a multiple of every voxel size */

/* ------------------------------------------------------------------ */
/* byte source: plain bytes or a gzip stream, read sequentially          */

typedef struct {
    const uint8_t *buf;
    uint8_t *wbuf;         /* buf, when it may be patched in place (else NULL) */
    size_t n, pos;         /* input bytes and read position (plain)    */
    int gz;
    z_stream zs;
    int zs_open, ended;
    uint64_t produced;     /* decompressed bytes handed out so far      */
    uint8_t *scratch;      /* CHUNK bytes                               */
    int zerr;              /* zlib error, if any                        */
    int inflate_parts;     /* threads that inflated the gzip fast path  */
    double ms_gunzip;      /* of it, the inflate alone (before the conversion) */
    const char *zmsg;
} src_t;

/* Next up to max bytes of the (decompressed) stream: *p points into the input
 * (plain) or into s->scratch (gzip). Returns the count; 0 at the end, -1 on
 * corrupt gzip data. Fills the whole request unless the stream ends. */
static long src_next(src_t *s, size_t max, const uint8_t **p) {
    if (max > CHUNK) max = CHUNK;
    if (!s->gz) {
        size_t k = s->n - s->pos < max ? s->n - s->pos : max;
        *p = s->buf + s->pos;
        s->pos += k;
        s->produced += k;
        return (long)k;
    }
    s->zs.next_out = s->scratch;
    s->zs.avail_out = (uInt)max;
    while (s->zs.avail_out > 0 && !s->ended) {
        size_t used = (size_t)(s->zs.next_in - s->buf);
        if (s->zs.avail_in == 0) {
            if (used == s->n) { s->ended = 1; break; } /* input exhausted: truncated stream */
            s->zs.avail_in = s->n - used > UINT_MAX ? UINT_MAX : (uInt)(s->n - used);
        }
        int r = inflate(&s->zs, Z_NO_FLUSH);
        if (r == Z_STREAM_END) {
            /* concatenated gzip members are one stream (cat a.gz b.gz) */
            size_t left = s->n - (size_t)(s->zs.next_in - s->buf);
            if (left >= 2 && s->zs.next_in[0] == 0x1f && s->zs.next_in[1] == 0x8b) {
                if (inflateReset(&s->zs) != Z_OK) { s->zerr = Z_STREAM_ERROR; s->zmsg = "inflateReset failed"; return -1; }
                continue;
            }
            s->ended = 1;
        } else if (r == Z_BUF_ERROR && s->zs.avail_in == 0) {
            continue; /* needs more input: refilled above, or the end */
        } else if (r != Z_OK) {
            s->zerr = r;
            s->zmsg = s->zs.msg ? s->zs.msg : (r == Z_MEM_ERROR ? "out of memory" : "invalid data");
            return -1;
        }
    }
    *p = s->scratch;
    long k = (long)(max - s->zs.avail_out);
    s->produced += (uint64_t)k;
    return k;
}

/* Says what zlib's terse trailer errors mean. */
static const char *zhint(const src_t *s) {
    if (s->zmsg && strstr(s->zmsg, "incorrect data check")) return " (the CRC-32 checksum does not match the data: the file is damaged)";
    if (s->zmsg && strstr(s->zmsg, "incorrect length check")) return " (the stored length does not match the data: the file is damaged)";
    return "";
}

/* Reads exactly n bytes into dst (n <= CHUNK); returns the count read. */
static long src_read(src_t *s, void *dst, size_t n) {
    size_t got = 0;
    while (got < n) {
        const uint8_t *p;
        long k = src_next(s, n - got, &p);
        if (k < 0) return -1;
        if (k == 0) break;
        memcpy((uint8_t *)dst + got, p, (size_t)k);
        got += (size_t)k;
    }
    return (long)got;
}

/* ------------------------------------------------------------------ */
/* format sniffing: name what a wrong file is                           */

static const char *sniff_other_format(const uint8_t *b, size_t n) {
    if (n >= 132 && !memcmp(b + 128, "DICM", 4)) return "a DICOM file (\"DICM\" at byte 128): convert the series to NIfTI first (e.g. dcm2niix)";
    if (n >= 4 && !memcmp(b, "NRRD", 4)) return "an NRRD file: convert it to NIfTI first";
    if (n >= 10 && (!memcmp(b, "ObjectType", 10) || !memcmp(b, "NDims", 5))) return "a MetaImage (.mha/.mhd) file: convert it to NIfTI first";
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return "a PNG image, not a CT volume";
    if (n >= 3 && !memcmp(b, "\xff\xd8\xff", 3)) return "a JPEG image, not a CT volume";
    if (n >= 4 && !memcmp(b, "PK\x03\x04", 4)) return "a zip archive: unzip it and open the .nii or .nii.gz inside";
    if (n >= 3 && !memcmp(b, "BZh", 3)) return "bzip2-compressed: only gzip (.nii.gz) is read";
    if (n >= 6 && !memcmp(b, "\xfd" "7zXZ\x00", 6)) return "xz-compressed: only gzip (.nii.gz) is read";
    if (n >= 4 && !memcmp(b, "\x28\xb5\x2f\xfd", 4)) return "zstd-compressed: only gzip (.nii.gz) is read";
    if (n >= 8 && !memcmp(b, "\x89HDF\r\n\x1a\n", 8)) return "an HDF5 file (MINC2?), not NIfTI";
    if (n >= 5 && !memcmp(b, "%PDF-", 5)) return "a PDF document, not a CT volume";
    return NULL;
}

/* ------------------------------------------------------------------ */
/* header: the fields we validate, in native byte order                 */

typedef struct {
    int ver, swap, hdr_size;
    int64_t dim[8];
    int datatype;
    double pixdim[8];
    double vox_offset;
    double slope, inter;
    int qcode, scode;
    double quat[6];    /* b c d, qoffset x y z */
    double srow[3][4];
    char magic[8];
} hdr_t;

static int32_t bswap32(int32_t v) { uint32_t u = (uint32_t)v; u = (u >> 24) | ((u >> 8) & 0xff00u) | ((u << 8) & 0xff0000u) | (u << 24); return (int32_t)u; }

static void hdr_from_n1(const nifti_1_header *raw, int swap, hdr_t *h) {
    nifti_1_header c = *raw;
    if (swap) nifti_swap_as_nifti1(&c);
    h->ver = 1; h->swap = swap; h->hdr_size = 348;
    for (int i = 0; i < 8; i++) { h->dim[i] = c.dim[i]; h->pixdim[i] = c.pixdim[i]; }
    h->datatype = c.datatype;
    h->vox_offset = c.vox_offset;
    h->slope = c.scl_slope; h->inter = c.scl_inter;
    h->qcode = c.qform_code; h->scode = c.sform_code;
    h->quat[0] = c.quatern_b; h->quat[1] = c.quatern_c; h->quat[2] = c.quatern_d;
    h->quat[3] = c.qoffset_x; h->quat[4] = c.qoffset_y; h->quat[5] = c.qoffset_z;
    for (int j = 0; j < 4; j++) { h->srow[0][j] = c.srow_x[j]; h->srow[1][j] = c.srow_y[j]; h->srow[2][j] = c.srow_z[j]; }
    memset(h->magic, 0, 8);
    memcpy(h->magic, c.magic, 4);
}

static void hdr_from_n2(const nifti_2_header *raw, int swap, hdr_t *h) {
    nifti_2_header c;
    memcpy(&c, raw, sizeof c);
    if (swap) nifti_swap_as_nifti2(&c);
    h->ver = 2; h->swap = swap; h->hdr_size = 540;
    for (int i = 0; i < 8; i++) { h->dim[i] = c.dim[i]; h->pixdim[i] = c.pixdim[i]; }
    h->datatype = c.datatype;
    h->vox_offset = (double)c.vox_offset;
    h->slope = c.scl_slope; h->inter = c.scl_inter;
    h->qcode = c.qform_code; h->scode = c.sform_code;
    h->quat[0] = c.quatern_b; h->quat[1] = c.quatern_c; h->quat[2] = c.quatern_d;
    h->quat[3] = c.qoffset_x; h->quat[4] = c.qoffset_y; h->quat[5] = c.qoffset_z;
    for (int j = 0; j < 4; j++) { h->srow[0][j] = c.srow_x[j]; h->srow[1][j] = c.srow_y[j]; h->srow[2][j] = c.srow_z[j]; }
    memcpy(h->magic, c.magic, 8);
}

static int dtype_size(int dt) {
    switch (dt) {
    case DT_UINT8: case DT_INT8: return 1;
    case DT_INT16: case DT_UINT16: return 2;
    case DT_INT32: case DT_UINT32: case DT_FLOAT32: return 4;
    case DT_FLOAT64: return 8;
    default: return 0;
    }
}

static const char *const axis_name = "ijk";

/* Every check that needs only the header. */
static int validate_header(csac_ctx *ctx, const hdr_t *h, int64_t *n_volumes) {
    const csac_params *P = &ctx->params;
    if (h->ver == 1) {
        if (!memcmp(h->magic, "ni1", 4))
            return csac__fail(ctx, CSAC_E_UNSUPPORTED, "magic \"ni1\": a two-file .hdr/.img pair; only single-file .nii / .nii.gz is read (convert it, e.g. with nifti_tool or fslchfiletype)");
        if (memcmp(h->magic, "n+1", 4)) {
            char m[17] = {0};
            for (int i = 0; i < 4; i++) snprintf(m + 4 * i, 5, "\\x%02x", (unsigned char)h->magic[i]);
            return csac__fail(ctx, CSAC_E_FORMAT, "not a NIfTI-1 file: sizeof_hdr is 348 but magic is \"%s\", not \"n+1\" (an Analyze 7.5 header?)", m);
        }
    } else if (memcmp(h->magic, "n+2\0\r\n\032\n", 8)) {
        if (!memcmp(h->magic, "ni2", 4))
            return csac__fail(ctx, CSAC_E_UNSUPPORTED, "magic \"ni2\": a two-file NIfTI-2 .hdr/.img pair; only single-file .nii / .nii.gz is read");
        return csac__fail(ctx, CSAC_E_FORMAT, "not a NIfTI-2 file: sizeof_hdr is 540 but magic is not \"n+2\\0\\r\\n\\032\\n\" (corrupted by a text-mode transfer?)");
    }
    int64_t d0 = h->dim[0];
    if (d0 < 1 || d0 > 7)
        return csac__fail(ctx, CSAC_E_FORMAT, "dim[0] = %lld: the number of dimensions must be 1..7", (long long)d0);
    if (d0 < 3)
        return csac__fail(ctx, CSAC_E_UNSUPPORTED, "dim[0] = %lld: a %lldD image; a chest CT needs a 3D volume", (long long)d0, (long long)d0);
    for (int i = 1; i <= d0; i++)
        if (h->dim[i] <= 0)
            return csac__fail(ctx, CSAC_E_FORMAT, "dim[%d] = %lld: every axis needs at least 1 voxel", i, (long long)h->dim[i]);
    for (int i = 1; i <= 3; i++)
        if (h->dim[i] > P->max_dim)
            return csac__fail(ctx, CSAC_E_LIMIT, "dim[%d] = %lld voxels, over the limit max_dim = %lld", i, (long long)h->dim[i], (long long)P->max_dim);
    for (int i = 1; i <= 3; i++)
        if (h->dim[i] == 1)
            return csac__fail(ctx, CSAC_E_UNSUPPORTED, "dim[%d] = 1: a single-slice (2D) image; a chest CT needs a stack of slices", i);
    int64_t nv = 1;
    for (int i = 4; i <= d0; i++) {
        if (h->dim[i] > (int64_t)1 << 31 || nv > ((int64_t)1 << 40) / h->dim[i])
            return csac__fail(ctx, CSAC_E_FORMAT, "dim[%d] = %lld: an absurd number of volumes", i, (long long)h->dim[i]);
        nv *= h->dim[i];
    }
    *n_volumes = nv;
    uint64_t nvox = (uint64_t)h->dim[1] * (uint64_t)h->dim[2] * (uint64_t)h->dim[3];
    if (nvox > P->max_voxels)
        return csac__fail(ctx, CSAC_E_LIMIT, "%lld x %lld x %lld = %llu voxels, over the limit max_voxels = %llu",
                          (long long)h->dim[1], (long long)h->dim[2], (long long)h->dim[3], (unsigned long long)nvox, (unsigned long long)P->max_voxels);
    int sz = dtype_size(h->datatype);
    if (!sz) {
        const char *nm = nifti_datatype_string(h->datatype);
        return csac__fail(ctx, CSAC_E_UNSUPPORTED, "datatype %d (%s) is not supported: readable are UINT8, INT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64",
                          h->datatype, nm && nm[0] != '*' && strcmp(nm, "DT_UNKNOWN") ? nm : "unknown code");
    }
    if (!isfinite(h->vox_offset) || h->vox_offset < h->hdr_size)
        return csac__fail(ctx, CSAC_E_FORMAT, "vox_offset = %g: the voxel data would start inside the %d-byte header", h->vox_offset, h->hdr_size);
    if (h->vox_offset != floor(h->vox_offset) || h->vox_offset > 1e15)
        return csac__fail(ctx, CSAC_E_FORMAT, "vox_offset = %g: not a usable byte offset", h->vox_offset);
    uint64_t need = (uint64_t)h->vox_offset + nvox * (uint64_t)sz;
    if (need > P->max_decompressed_bytes)
        return csac__fail(ctx, CSAC_E_LIMIT, "the first volume needs %llu bytes (vox_offset %.0f + %llu voxels x %d bytes), over the limit max_decompressed_bytes = %llu",
                          (unsigned long long)need, h->vox_offset, (unsigned long long)nvox, sz, (unsigned long long)P->max_decompressed_bytes);
    if (!isfinite(h->slope) || !isfinite(h->inter))
        return csac__fail(ctx, CSAC_E_DATA, "scl_slope = %g, scl_inter = %g: the intensity scaling must be finite", h->slope, h->inter);
    if (h->scode > 0) {
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                if (!isfinite(h->srow[r][c]))
                    return csac__fail(ctx, CSAC_E_FORMAT, "srow_%c[%d] = %g: the sform (sform_code %d) must be finite", "xyz"[r], c, h->srow[r][c], h->scode);
    } else {
        for (int i = 1; i <= 3; i++)
            if (!isfinite(h->pixdim[i]) || h->pixdim[i] == 0)
                return csac__fail(ctx, CSAC_E_FORMAT, "pixdim[%d] = %g: the voxel spacing must be a non-zero finite number (there is no sform)", i, h->pixdim[i]);
        if (h->qcode > 0)
            for (int i = 0; i < 6; i++)
                if (!isfinite(h->quat[i]))
                    return csac__fail(ctx, CSAC_E_FORMAT, "%s = %g: the qform (qform_code %d) must be finite",
                                      (const char *const[]){"quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z"}[i], h->quat[i], h->qcode);
    }
    return CSAC_OK;
}

/* ------------------------------------------------------------------ */
/* voxel conversion: raw chunk -> float HU, with raw min/max/sum        */

typedef struct {
    int dt, size, swap;
    int scaled;          /* slope != 0 and (slope, inter) != (1, 0)  */
    float fs, fi;        /* scaling in float (<= 16-bit types)       */
    double ds, di;       /* in double (32/64-bit types)              */
    double mn, mx;       /* raw extremes (before scaling)            */
    double fsum;         /* float types: sum of values               */
    int64_t isum;        /* integer types: exact sum                 */
    int64_t n_nan, first_bad;
    int any;
} conv_t;

#define LOAD(T, p, t) ({ T v_; memcpy(&v_, (p) + (size_t)(t) * sizeof(T), sizeof(T)); v_; })

/* Small integers: float math is exact enough (24-bit mantissa). */
#define DEF_SMALL(NAME, T)                                                                  \
    static void NAME(const uint8_t *restrict p, size_t cnt, float *restrict dst, conv_t *c) { \
        T mn = LOAD(T, p, 0), mx = mn;                                                      \
        int64_t s = 0;                                                                      \
        const float fs = c->fs, fi = c->fi;                                                 \
        if (c->scaled)                                                                      \
            for (size_t t = 0; t < cnt; t++) dst[t] = (float)LOAD(T, p, t) * fs + fi;       \
        else                                                                                \
            for (size_t t = 0; t < cnt; t++) dst[t] = (float)LOAD(T, p, t);                 \
        /* 32-bit partial sums over blocks of 32 Ki (|v| <= 65535): they vectorise */     \
        for (size_t t0 = 0; t0 < cnt; t0 += 32768) {                                        \
            size_t t1 = cnt - t0 < 32768 ? cnt : t0 + 32768;                                \
            int32_t s32 = 0;                                                                \
            for (size_t t = t0; t < t1; t++) {                                              \
                T v = LOAD(T, p, t);                                                        \
                mn = v < mn ? v : mn;                                                       \
                mx = v > mx ? v : mx;                                                       \
                s32 += v;                                                                   \
            }                                                                               \
            s += s32;                                                                       \
        }                                                                                   \
        c->isum += s;                                                                       \
        if (!c->any || mn < c->mn) c->mn = mn;                                              \
        if (!c->any || mx > c->mx) c->mx = mx;                                              \
        c->any = 1;                                                                         \
    }

#define DEF_INT32(NAME, T)                                                                  \
    static void NAME(const uint8_t *restrict p, size_t cnt, float *restrict dst, conv_t *c) { \
        T mn = LOAD(T, p, 0), mx = mn;                                                      \
        int64_t s = 0;                                                                      \
        for (size_t t = 0; t < cnt; t++) {                                                  \
            T v = LOAD(T, p, t);                                                            \
            dst[t] = c->scaled ? (float)((double)v * c->ds + c->di) : (float)v;             \
            mn = v < mn ? v : mn;                                                           \
            mx = v > mx ? v : mx;                                                           \
            s += v;                                                                         \
        }                                                                                   \
        c->isum += s;                                                                       \
        if (!c->any || mn < c->mn) c->mn = mn;                                              \
        if (!c->any || mx > c->mx) c->mx = mx;                                              \
        c->any = 1;                                                                         \
    }

/* Floats: NaN is counted, not compared (v < mn is false for NaN). */
#define DEF_FLOAT(NAME, T)                                                                  \
    static void NAME(const uint8_t *restrict p, size_t cnt, float *restrict dst, conv_t *c) { \
        double mn = c->any ? c->mn : INFINITY, mx = c->any ? c->mx : -INFINITY, s = 0;      \
        int64_t nan = 0;                                                                    \
        for (size_t t = 0; t < cnt; t++) {                                                  \
            T v = LOAD(T, p, t);                                                            \
            dst[t] = c->scaled ? (float)((double)v * c->ds + c->di) : (float)v;             \
            if (v != v) { nan++; continue; }                                                \
            mn = v < mn ? v : mn;                                                           \
            mx = v > mx ? v : mx;                                                           \
            s += v;                                                                         \
        }                                                                                   \
        c->fsum += s;                                                                       \
        c->n_nan += nan;                                                                    \
        c->mn = mn; c->mx = mx; c->any = 1;                                                 \
    }

DEF_SMALL(conv_u8, uint8_t)
DEF_SMALL(conv_i8, int8_t)
DEF_SMALL(conv_i16, int16_t)
DEF_SMALL(conv_u16, uint16_t)
DEF_INT32(conv_i32, int32_t)
DEF_INT32(conv_u32, uint32_t)
DEF_FLOAT(conv_f32, float)
DEF_FLOAT(conv_f64, double)

static void convert_chunk(const uint8_t *p, size_t cnt, float *dst, conv_t *c) {
    switch (c->dt) {
    case DT_UINT8: conv_u8(p, cnt, dst, c); break;
    case DT_INT8: conv_i8(p, cnt, dst, c); break;
    case DT_INT16: conv_i16(p, cnt, dst, c); break;
    case DT_UINT16: conv_u16(p, cnt, dst, c); break;
    case DT_INT32: conv_i32(p, cnt, dst, c); break;
    case DT_UINT32: conv_u32(p, cnt, dst, c); break;
    case DT_FLOAT32: conv_f32(p, cnt, dst, c); break;
    case DT_FLOAT64: conv_f64(p, cnt, dst, c); break;
    }
}

/* ------------------------------------------------------------------ */
/* geometry                                                             */

void csac__mat44_mul(const double a[4][4], const double b[4][4], double out[4][4]) {
    double t[4][4];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            double s = 0;
            for (int k = 0; k < 4; k++) s += a[r][k] * b[k][c];
            t[r][c] = s;
        }
    memcpy(out, t, sizeof t);
}

int csac__mat44_inverse(const double m[4][4], double out[4][4]) {
    /* affine: invert the 3x3 part by cofactors, then the translation */
    double a = m[0][0], b = m[0][1], c = m[0][2], d = m[1][0], e = m[1][1], f = m[1][2], g = m[2][0], h = m[2][1], i = m[2][2];
    double A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
    double det = a * A + b * B + c * C;
    if (!(fabs(det) > 1e-12) || !isfinite(det)) return 0;
    double r[3][3] = {{A / det, -(b * i - c * h) / det, (b * f - c * e) / det},
                      {B / det, (a * i - c * g) / det, -(a * f - c * d) / det},
                      {C / det, -(a * h - b * g) / det, (a * e - b * d) / det}};
    for (int y = 0; y < 3; y++) {
        for (int x = 0; x < 3; x++) out[y][x] = r[y][x];
        out[y][3] = -(r[y][0] * m[0][3] + r[y][1] * m[1][3] + r[y][2] * m[2][3]);
    }
    out[3][0] = out[3][1] = out[3][2] = 0;
    out[3][3] = 1;
    return 1;
}

static char orient_letter(int code) {
    switch (code) {
    case NIFTI_L2R: return 'R';
    case NIFTI_R2L: return 'L';
    case NIFTI_P2A: return 'A';
    case NIFTI_A2P: return 'P';
    case NIFTI_I2S: return 'S';
    case NIFTI_S2I: return 'I';
    default: return '?';
    }
}

void csac__volume_warn(csac_volume *vol, const char *fmt, ...) {
    if (vol->n_warnings >= CSAC__MAX_WARNINGS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vol->warnings[vol->n_warnings++], CSAC__WARNING_LEN, fmt, ap);
    va_end(ap);
}

/* Affine in use from libnifti's conversion of the raw header. */
static int header_geometry(csac_ctx *ctx, const uint8_t *raw_hdr, const hdr_t *h, csac_volume *vol) {
    nifti_image *nim;
    if (h->ver == 1) {
        nifti_1_header n1;
        memcpy(&n1, raw_hdr, sizeof n1);
        nim = nifti_convert_n1hdr2nim(n1, NULL);
    } else {
        nifti_2_header n2;
        memcpy(&n2, raw_hdr, sizeof n2);
        nim = nifti_convert_n2hdr2nim(n2, NULL);
    }
    if (!nim) return csac__fail(ctx, CSAC_E_FORMAT, "libnifti rejected the header (see stderr)");
    csac_volume_info *in = &vol->info;
    const nifti_dmat44 *M;
    if (nim->sform_code > 0) { M = &nim->sto_xyz; in->affine_source = "sform"; }
    else { M = &nim->qto_xyz; in->affine_source = nim->qform_code > 0 ? "qform" : "pixdim"; }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) in->vox2world[r][c] = M->m[r][c];
    in->vox2world[3][0] = in->vox2world[3][1] = in->vox2world[3][2] = 0;
    in->vox2world[3][3] = 1;
    in->qform_code = nim->qform_code;
    in->sform_code = nim->sform_code;
    csac__nifti_geom *g = &vol->geom;
    g->qform_code = nim->qform_code;
    g->sform_code = nim->sform_code;
    g->quatern[0] = nim->quatern_b; g->quatern[1] = nim->quatern_c; g->quatern[2] = nim->quatern_d;
    g->qoffset[0] = nim->qoffset_x; g->qoffset[1] = nim->qoffset_y; g->qoffset[2] = nim->qoffset_z;
    g->qfac = nim->qfac;
    g->pixdim[0] = nim->dx; g->pixdim[1] = nim->dy; g->pixdim[2] = nim->dz;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) g->srow[r][c] = nim->sto_xyz.m[r][c];
    in->scl_slope = h->slope;
    in->scl_inter = h->inter;
    int ic, jc, kc;
    nifti_dmat44_to_orientation(*M, &ic, &jc, &kc);
    in->orientation[0] = orient_letter(ic);
    in->orientation[1] = orient_letter(jc);
    in->orientation[2] = orient_letter(kc);
    in->orientation[3] = '\0';
    nifti_image_free(nim);

    for (int a = 0; a < 3; a++) {
        double s = 0;
        for (int r = 0; r < 3; r++) s += in->vox2world[r][a] * in->vox2world[r][a];
        in->spacing[a] = sqrt(s);
        if (!(in->spacing[a] >= 1e-3 && in->spacing[a] <= 100))
            return csac__fail(ctx, CSAC_E_FORMAT, "voxel spacing along %c is %g mm (from the %s): not a plausible CT voxel (0.001..100 mm)",
                              axis_name[a], in->spacing[a], in->affine_source);
    }
    if (!csac__mat44_inverse(in->vox2world, vol->world2vox))
        return csac__fail(ctx, CSAC_E_FORMAT, "the %s is singular (its axes are linearly dependent): voxels cannot be placed in space", in->affine_source);
    /* slice axis: the source axis most aligned with world z */
    int best = 2;
    double bz = -1;
    for (int a = 0; a < 3; a++) {
        double z = fabs(in->vox2world[2][a]) / in->spacing[a];
        if (z > bz + 1e-9) { bz = z; best = a; }
    }
    vol->slice_axis = best;
    return CSAC_OK;
}

/* ------------------------------------------------------------------ */
/* gzip fast path                                                       */

enum { WHOLE_VOX = CHUNK / 4 }; /* voxels per in-place conversion step */

/* Decompresses the whole gzip input s->buf[0, s->n) with libdeflate into the
 * tail of dst (nvox floats) and converts the voxels in place. Returns 1 when
 * dst holds all nvox voxels (c updated as convert_chunk does), 0 when the zlib
 * path must run instead (dst contents then undefined, c and s untouched).
 *
 * Taken only when the stream is exactly one gzip member of exactly `need`
 * bytes (header, extensions, one volume): 1- and 2-byte voxels, so the raw
 * stream fits in the float buffer's second half; the ISIZE trailer (size mod
 * 2^32) must say `need`, libdeflate gets exactly `need` bytes of room (a longer
 * stream fails with INSUFFICIENT_SPACE, a shorter one with SHORT_OUTPUT), and
 * the member must end at the end of the input. libdeflate checks the CRC-32
 * and ISIZE. Its decompressor is one fixed-size allocation (no growth on
 * hostile input); it never writes past the room given. A truncated or corrupt
 * stream, trailing bytes or a second member all fall back to zlib, which
 * produces the same status and message as without this path.
 *
 * In place: voxel i's raw bytes start at 4N - sz*N + sz*i >= 2N + 2i, and the
 * float for voxel i ends at 4i + 4, so converting front to back in steps whose
 * floats end before the step's own raw bytes never overwrites unread data;
 * the last few voxels (where a step would overlap) are copied to s->scratch. */
typedef struct {
    const uint8_t *vox; /* conversion phase: voxels [a, b) */
    float *dst;
    size_t a, b;
    int sz;
    conv_t *cs;         /* one stats block per thread (copies of the caller's) */
} whole_job;

static void convert_task(void *arg, int ith, int nth) {
    whole_job *j = arg;
    long lo, hi, nchunk = (long)((j->b - j->a + WHOLE_VOX - 1) / WHOLE_VOX);
    csac_split(nchunk, ith, nth, &lo, &hi);
    for (long q = lo; q < hi; q++) {
        size_t t0 = j->a + (size_t)q * WHOLE_VOX, cnt = j->b - t0 < WHOLE_VOX ? j->b - t0 : WHOLE_VOX;
        uint8_t *p = (uint8_t *)(uintptr_t)(j->vox + t0 * (size_t)j->sz);
        if (j->cs[ith].swap && j->sz == 2) nifti_swap_2bytes((int64_t)cnt, p);
        convert_chunk(p, cnt, j->dst + t0, &j->cs[ith]);
    }
}

/* Bytes before the deflate data of a gzip member (0: not a header we take). */
static size_t gzip_header_len(const uint8_t *b, size_t n) {
    if (n < 18 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || (b[3] & 0xe0)) return 0;
    size_t p = 10;
    if (b[3] & 4) p += 2 + ((size_t)b[10] | (size_t)b[11] << 8);
    for (int f = 8; f <= 16; f += 8)
        if (b[3] & f) {
            while (p < n && b[p]) p++;
            p++;
        }
    if (b[3] & 2) p += 2;
    return p + 8 < n ? p : 0;
}

static int gzip_whole(csac_pool *pool, src_t *s, float *dst, size_t nvox, int sz, uint64_t need, conv_t *c) {
    if (sz > 2 || s->n < 18 || need > (uint64_t)nvox * 4 || need > SIZE_MAX) return 0;
    const uint8_t *t = s->buf + s->n - 4;
    uint32_t isize = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    if (isize != (uint32_t)need) return 0;
    int nth = csac_pool_size(pool);
    conv_t *cs = malloc(sizeof(conv_t) * (size_t)nth);
    if (!cs) return 0;
    uint8_t *const base = (uint8_t *)dst;
    uint8_t *const raw = base + nvox * 4 - (size_t)need; /* the decompressed stream */
    /* several threads when the input may be patched (nn/pinflate.c), else
     * (or if that path declines) one libdeflate call */
    size_t hl = s->wbuf && nth > 1 ? gzip_header_len(s->buf, s->n) : 0;
    uint32_t crc = hl ? (uint32_t)t[-4] | (uint32_t)t[-3] << 8 | (uint32_t)t[-2] << 16 | (uint32_t)t[-1] << 24 : 0;
    s->inflate_parts = 1;
    double t0 = csac__now_ms();
    if (!hl || !csac__pinflate(pool, s->wbuf + hl, s->n - hl, raw, (size_t)need, crc, base, (size_t)(raw - base),
                                CSAC__PINFLATE_MIN_PART, &s->inflate_parts)) {
        struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
        if (!d) { free(cs); return 0; }
        size_t in_used = 0;
        enum libdeflate_result r = libdeflate_gzip_decompress_ex(d, s->buf, s->n, raw, (size_t)need, &in_used, NULL);
        libdeflate_free_decompressor(d);
        if (r != LIBDEFLATE_SUCCESS || in_used != s->n) { free(cs); return 0; }
    }
    s->ms_gunzip = csac__now_ms() - t0;
    whole_job j;
    memset(&j, 0, sizeof j);

    /* Voxel i's raw bytes start at V + sz*i (V = 4N - sz*N), its float ends
     * at 4i + 4. With voxels [0, a) done, every voxel of [a, b) with
     * 4b <= V + sz*a can be converted at once (its floats land on consumed
     * raw bytes only), so the threads convert in phases of halving size; the
     * serial loop below finishes the small rest. Stats merge exactly
     * (integer sums, min, max), so the result does not depend on nth. */
    const size_t usz = (size_t)sz, V = nvox * 4 - nvox * usz;
    j.vox = base + V; j.dst = dst; j.sz = sz; j.cs = cs;
    for (int i = 0; i < nth; i++) { cs[i] = *c; cs[i].isum = 0; cs[i].any = 0; }
    size_t done = 0;
    for (;;) {
        size_t b = (V + usz * done) / 4;
        if (b > nvox) b = nvox;
        if (b <= done || b - done < WHOLE_VOX) break;
        j.a = done; j.b = b;
        csac_pool_run(pool, convert_task, &j);
        done = b;
    }
    for (int i = 0; i < nth; i++) {
        if (!cs[i].any) continue;
        if (!c->any || cs[i].mn < c->mn) c->mn = cs[i].mn;
        if (!c->any || cs[i].mx > c->mx) c->mx = cs[i].mx;
        c->isum += cs[i].isum;
        c->any = 1;
    }
    free(cs);
    while (done < nvox) {
        size_t cnt = nvox - done < WHOLE_VOX ? nvox - done : WHOLE_VOX;
        uint8_t *p = base + V + done * usz;
        if ((done + cnt) * 4 > (size_t)(p - base)) {
            /* the floats would reach this step's raw bytes: the rest is
             * < 2 * WHOLE_VOX voxels (<= CHUNK bytes), convert it from scratch */
            cnt = nvox - done;
            memcpy(s->scratch, p, cnt * usz);
            p = s->scratch;
        }
        if (c->swap && sz == 2) nifti_swap_2bytes((int64_t)cnt, p);
        convert_chunk(p, cnt, dst + done, c);
        done += cnt;
    }
    s->produced = need;
    s->ended = 1;
    return 1;
}

/* ------------------------------------------------------------------ */
/* the reader                                                           */

static int read_impl(csac_ctx *ctx, src_t *s, csac_volume *vol) {
    uint8_t raw[540];
    memset(raw, 0, sizeof raw);
    long got = src_read(s, raw, 348);
    if (got < 0) return csac__fail(ctx, CSAC_E_FORMAT, "corrupt gzip data in the header: %s", s->zmsg);
    const char *other = sniff_other_format(raw, (size_t)got);
    if (other) return csac__fail(ctx, CSAC_E_FORMAT, "not a NIfTI file: %s%s", s->gz ? "gzip-compressed " : "", other);
    if (got < 4) return csac__fail(ctx, CSAC_E_FORMAT, "not a NIfTI file: only %ld byte%s%s", got, got == 1 ? "" : "s", s->gz ? " after gunzip" : "");
    int32_t sh;
    memcpy(&sh, raw, 4);
    int ver = 0, swap = 0;
    if (sh == 348) ver = 1;
    else if (bswap32(sh) == 348) ver = 1, swap = 1;
    else if (sh == 540) ver = 2;
    else if (bswap32(sh) == 540) ver = 2, swap = 1;
    else {
        int printable = 1;
        for (long i = 0; i < (got < 64 ? got : 64); i++)
            if (raw[i] < 9 || (raw[i] > 13 && raw[i] < 32) || raw[i] > 126) printable = 0;
        return csac__fail(ctx, CSAC_E_FORMAT, "not a NIfTI file: sizeof_hdr is %d, expected 348 (NIfTI-1) or 540 (NIfTI-2)%s", sh,
                          printable ? "; the file starts with text" : "");
    }
    int hsz = ver == 1 ? 348 : 540;
    if (ver == 2 && got == 348) {
        long g2 = src_read(s, raw + 348, 540 - 348);
        if (g2 < 0) return csac__fail(ctx, CSAC_E_FORMAT, "corrupt gzip data in the header: %s", s->zmsg);
        got += g2;
    }
    if (got < hsz)
        return csac__fail(ctx, CSAC_E_TRUNCATED, "truncated: the NIfTI-%d header needs %d bytes, the %s has only %ld", ver, hsz, s->gz ? "gzip stream" : "file", got);

    hdr_t h;
    if (ver == 1) hdr_from_n1((const nifti_1_header *)(const void *)raw, swap, &h);
    else hdr_from_n2((const nifti_2_header *)(const void *)raw, swap, &h);
    int64_t n_volumes = 1;
    int st = validate_header(ctx, &h, &n_volumes);
    if (st) return st;
    if ((st = header_geometry(ctx, raw, &h, vol))) return st;

    csac_volume_info *in = &vol->info;
    in->nifti_version = ver;
    for (int a = 0; a < 3; a++) in->dim[a] = h.dim[a + 1];
    in->n_volumes = n_volumes;
    in->datatype = h.datatype;
    snprintf(vol->datatype_name, sizeof vol->datatype_name, "%s", nifti_datatype_string(h.datatype));
    in->datatype_name = vol->datatype_name;

    /* skip extensions up to vox_offset */
    uint64_t off = (uint64_t)h.vox_offset;
    while (s->produced < off) {
        const uint8_t *p;
        uint64_t left = off - s->produced;
        long k = src_next(s, left > CHUNK ? CHUNK : (size_t)left, &p);
        if (k < 0) return csac__fail(ctx, CSAC_E_FORMAT, "corrupt gzip data before the voxels: %s", s->zmsg);
        if (k == 0)
            return csac__fail(ctx, CSAC_E_TRUNCATED, "truncated: vox_offset is %llu but the %s ends after %llu bytes",
                              (unsigned long long)off, s->gz ? "gzip stream" : "file", (unsigned long long)s->produced);
    }

    uint64_t nvox64 = (uint64_t)(in->dim[0] * in->dim[1] * in->dim[2]);
    if (nvox64 > SIZE_MAX / sizeof(float) / 2) /* 32-bit wasm: keep room for the rest */
        return csac__fail(ctx, CSAC_E_LIMIT, "%llu voxels do not fit in this build's address space", (unsigned long long)nvox64);
    size_t nvox = (size_t)nvox64;
    int sz = dtype_size(h.datatype);
    uint64_t need = off + (uint64_t)nvox * (uint64_t)sz;
    if (!s->gz && s->n < need)
        return csac__fail(ctx, CSAC_E_TRUNCATED, "truncated: the header declares %lld x %lld x %lld %s voxels from byte %llu (%llu bytes in all), the file has %zu",
                          (long long)in->dim[0], (long long)in->dim[1], (long long)in->dim[2], vol->datatype_name,
                          (unsigned long long)off, (unsigned long long)need, s->n);
    vol->data = malloc(nvox * sizeof(float));
    if (!vol->data) return csac__fail(ctx, CSAC_E_NOMEM, "out of memory for %zu voxels (%zu MB as float32)", nvox, nvox * 4 >> 20);
#if defined(CSAC_HAVE_MMAP) && defined(MADV_HUGEPAGE)
    /* Transparent huge pages where the system leaves them to madvise: the
     * volume is written once, front to back, and 4 KiB page faults cost more
     * CPU time than the conversion itself (advice only; ignored if refused). */
    if (nvox * sizeof(float) >= (size_t)8 << 20) {
        uintptr_t a = ((uintptr_t)vol->data + 4095) & ~(uintptr_t)4095;
        uintptr_t e = ((uintptr_t)vol->data + nvox * sizeof(float)) & ~(uintptr_t)4095;
        if (e > a) madvise((void *)a, e - a, MADV_HUGEPAGE);
    }
#endif

    conv_t c;
    memset(&c, 0, sizeof c);
    c.dt = h.datatype; c.size = sz; c.swap = swap;
    c.scaled = h.slope != 0 && !(h.slope == 1 && h.inter == 0);
    c.fs = (float)h.slope; c.fi = (float)h.inter; c.ds = h.slope; c.di = h.inter;
    size_t done = 0;
    if (s->gz && n_volumes == 1 && gzip_whole(ctx->pool, s, vol->data, nvox, sz, need, &c)) done = nvox;
    while (done < nvox) {
        const uint8_t *p;
        size_t want = (nvox - done) * (size_t)sz;
        long k = src_next(s, want > CHUNK ? CHUNK : want, &p);
        if (k < 0) return csac__fail(ctx, CSAC_E_FORMAT, "corrupt gzip data after voxel %zu of %zu: %s%s", done, nvox, s->zmsg, zhint(s));
        if (k == 0 || k % sz) {
            return csac__fail(ctx, CSAC_E_TRUNCATED, "truncated: the gzip stream ends after %llu of the %llu bytes the header declares (voxel %zu of %zu)",
                              (unsigned long long)s->produced, (unsigned long long)need, done + (size_t)k / (size_t)sz, nvox);
        }
        size_t cnt = (size_t)k / (size_t)sz;
        if (swap) {
            if (p != s->scratch) { memcpy(s->scratch, p, (size_t)k); p = s->scratch; }
            if (sz == 2) nifti_swap_2bytes((int64_t)cnt, s->scratch);
            else if (sz == 4) nifti_swap_4bytes((int64_t)cnt, s->scratch);
            else if (sz == 8) nifti_swap_8bytes((int64_t)cnt, s->scratch);
        }
        convert_chunk(p, cnt, vol->data + done, &c);
        done += cnt;
    }
    /* gzip integrity: with one volume the stream should end right here;
     * reading on to the end lets zlib check the CRC (bounded: 1 MiB). */
    if (s->gz && n_volumes == 1) {
        uint64_t extra = 0;
        while (!s->ended && extra < (1u << 20)) {
            const uint8_t *p;
            long k = src_next(s, CHUNK / 4, &p);
            if (k < 0) return csac__fail(ctx, CSAC_E_FORMAT, "corrupt gzip data at the end of the stream: %s%s", s->zmsg, zhint(s));
            if (k == 0) break;
            extra += (uint64_t)k;
        }
    }

    /* non-finite values: name the first one */
    if (c.n_nan || !isfinite(c.mn) || !isfinite(c.mx)) {
        for (size_t t = 0; t < nvox; t++)
            if (!isfinite(vol->data[t])) {
                size_t i = t % (size_t)in->dim[0], j = t / (size_t)in->dim[0] % (size_t)in->dim[1], k = t / (size_t)(in->dim[0] * in->dim[1]);
                char nans[64] = "";
                if (c.n_nan > 1) snprintf(nans, sizeof nans, " (%lld NaN in all)", (long long)c.n_nan);
                return csac__fail(ctx, CSAC_E_DATA, "voxel (%zu, %zu, %zu) is %s: non-finite values cannot be screened%s",
                                  i, j, k, isnan(vol->data[t]) ? "NaN" : "infinite", nans);
            }
    }
    /* HU summary with the same scaling the voxels got */
    double lo = c.mn, hi = c.mx, mean;
    if (h.datatype == DT_FLOAT32 || h.datatype == DT_FLOAT64) mean = c.fsum / (double)nvox;
    else mean = (double)c.isum / (double)nvox;
    if (c.scaled) {
        if (sz <= 2) { lo = (float)lo * c.fs + c.fi; hi = (float)hi * c.fs + c.fi; }
        else { lo = (float)(lo * c.ds + c.di); hi = (float)(hi * c.ds + c.di); }
        mean = mean * c.ds + c.di;
        if (lo > hi) { double t = lo; lo = hi; hi = t; }
    }
    if (!isfinite(lo) || !isfinite(hi) || fabs(lo) > 3.4e38 || fabs(hi) > 3.4e38) {
        for (size_t t = 0; t < nvox; t++)
            if (!isfinite(vol->data[t]))
                return csac__fail(ctx, CSAC_E_DATA, "voxel %zu is infinite after scaling (scl_slope %g, scl_inter %g)", t, h.slope, h.inter);
    }
    in->hu_min = (float)lo; in->hu_max = (float)hi; in->hu_mean = (float)mean;

    /* out-of-distribution warnings */
    if (n_volumes > 1)
        csac__volume_warn(vol, "the file holds %lld volumes (dim[4..7]); only the first is read", (long long)n_volumes);
    if (hi <= 1.0 && lo >= -1.0)
        csac__volume_warn(vol, "intensities %g..%g look already normalised (e.g. to 0..1), not CT Hounsfield units: results are unreliable", lo, hi);
    else if (lo >= 0)
        csac__volume_warn(vol, "no value is below 0 (range %g..%g): CT air is about -1000 HU, so this looks like MR or unscaled data (check scl_slope/scl_inter)", lo, hi);
    else if (lo > -500)
        csac__volume_warn(vol, "the lowest value is %g: a chest CT has air at about -1000 HU, so these may not be Hounsfield units", lo);
    else if (hi > 40000)
        csac__volume_warn(vol, "the highest value is %g: far above the CT range (up to ~3000 HU, ~30000 with metal): these may not be Hounsfield units", hi);
    int za = vol->slice_axis;
    double zmm = (double)in->dim[za] * in->spacing[za];
    if (in->spacing[za] > 8.0 + 1e-3)
        csac__volume_warn(vol, "slices are %.1f mm apart (thicker than 8 mm): small lesions may be missed", in->spacing[za]);
    if (zmm < 200)
        csac__volume_warn(vol, "the scan covers only %.0f mm along the body axis (%lld slices x %.2f mm); a chest needs about 250-300 mm, so the lungs may be cut",
                          zmm, (long long)in->dim[za], in->spacing[za]);
    return CSAC_OK;
}

/* wbuf: buf itself when the reader may patch it in place (and restore it), else NULL */
static int read_buffer_checked(csac_ctx *ctx, const uint8_t *buf, uint8_t *wbuf, size_t n, csac_volume **out) {
    double t0 = csac__now_ms();
    if (n == 0) return csac__fail(ctx, CSAC_E_FORMAT, "not a NIfTI file: the input is empty (0 bytes)");
    if ((uint64_t)n > ctx->params.max_file_bytes)
        return csac__fail(ctx, CSAC_E_LIMIT, "the input is %zu bytes, over the limit max_file_bytes = %llu", n, (unsigned long long)ctx->params.max_file_bytes);
    csac_volume *vol = calloc(1, sizeof *vol);
    src_t s;
    memset(&s, 0, sizeof s);
    s.buf = buf;
    s.wbuf = wbuf;
    s.n = n;
    s.gz = n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
    s.scratch = malloc(CHUNK); /* gzip output, or byte-swapped plain data */
    int st = CSAC_OK;
    if (!vol || !s.scratch) st = csac__fail(ctx, CSAC_E_NOMEM, "out of memory");
    if (!st && s.gz) {
        s.zs.next_in = (Bytef *)(uintptr_t)buf;
        s.zs.avail_in = 0;
        if (inflateInit2(&s.zs, 15 + 32) != Z_OK) st = csac__fail(ctx, CSAC_E_NOMEM, "inflateInit2 failed");
        else s.zs_open = 1;
    }
    if (!st) st = read_impl(ctx, &s, vol);
    if (s.zs_open) inflateEnd(&s.zs);
    free(s.scratch);
    if (st) {
        csac_volume_free(vol);
        return st;
    }
    vol->ms_inflate = csac__now_ms() - t0;
    vol->inflate_parts = s.inflate_parts;
    vol->ms_gunzip = s.ms_gunzip;
    *out = vol;
    return CSAC_OK;
}

/* Decimation and centring, run after the input bytes are released (peak memory). */
static int finish(csac_ctx *ctx, int st, csac_volume **out) {
    if (st) return st;
    st = csac__volume_analyse(ctx, *out);
    if (st) {
        csac_volume_free(*out);
        *out = NULL;
        return st;
    }
    csac__clear_error(ctx);
    return CSAC_OK;
}

int csac_volume_read_buffer(csac_ctx *ctx, const void *buf, size_t n, csac_volume **out) {
    if (out) *out = NULL;
    if (!ctx || !out || (!buf && n)) return csac__fail(ctx, CSAC_E_ARG, "csac_volume_read_buffer: NULL argument");
    return finish(ctx, read_buffer_checked(ctx, buf, NULL, n, out), out);
}

int csac_volume_read_buffer_take(csac_ctx *ctx, void *buf, size_t n, csac_volume **out) {
    if (out) *out = NULL;
    if (!ctx || !out || (!buf && n)) {
        free(buf);
        return csac__fail(ctx, CSAC_E_ARG, "csac_volume_read_buffer_take: NULL argument");
    }
    int st = read_buffer_checked(ctx, buf, buf, n, out);
    free(buf); /* before the analysis: the compressed bytes and the analysis buffers never coexist */
    return finish(ctx, st, out);
}

int csac_volume_read_file(csac_ctx *ctx, const char *path, csac_volume **out) {
    if (out) *out = NULL;
    if (!ctx || !path || !out) return csac__fail(ctx, CSAC_E_ARG, "csac_volume_read_file: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return csac__fail(ctx, CSAC_E_IO, "cannot open '%s'", path);
    int st;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return csac__fail(ctx, CSAC_E_IO, "cannot read '%s': fstat failed", path);
    }
    if (S_ISDIR(sb.st_mode)) {
        fclose(f);
        return csac__fail(ctx, CSAC_E_IO, "cannot read '%s': it is a directory", path);
    }
    long long size = (long long)sb.st_size;
    if ((uint64_t)size > ctx->params.max_file_bytes) {
        fclose(f);
        return csac__fail(ctx, CSAC_E_LIMIT, "'%s' is %lld bytes, over the limit max_file_bytes = %llu", path, size, (unsigned long long)ctx->params.max_file_bytes);
    }
#ifdef CSAC_HAVE_MMAP
    /* map instead of copying: the pages are file-backed and can be dropped */
    if (size > 0) {
        /* writable and private: the reader may patch a few bytes (copy-on-write, never the file) */
        void *m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fileno(f), 0);
        if (m != MAP_FAILED) {
            madvise(m, (size_t)size, MADV_SEQUENTIAL);
            fclose(f);
            st = read_buffer_checked(ctx, m, m, (size_t)size, out);
            munmap(m, (size_t)size);
            return finish(ctx, st, out);
        }
    }
#endif
    uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        return csac__fail(ctx, CSAC_E_NOMEM, "out of memory reading '%s' (%lld bytes)", path, size);
    }
    size_t rd = size > 0 ? fread(buf, 1, (size_t)size, f) : 0;
    fclose(f);
    if (rd != (size_t)size) {
        free(buf);
        return csac__fail(ctx, CSAC_E_IO, "read error on '%s' (%zu of %lld bytes)", path, rd, size);
    }
    st = read_buffer_checked(ctx, buf, buf, (size_t)size, out);
    free(buf);
    return finish(ctx, st, out);
}

void csac_volume_free(csac_volume *vol) {
    if (!vol) return;
    free(vol->data);
    free(vol->dec);
    free(vol);
}

int csac_volume_get_info(const csac_volume *vol, csac_volume_info *info) {
    if (!vol || !info) return CSAC_E_ARG;
    *info = vol->info;
    return CSAC_OK;
}

const float *csac_volume_data(const csac_volume *vol) { return vol ? vol->data : NULL; }

int csac_volume_n_warnings(const csac_volume *vol) { return vol ? vol->n_warnings : 0; }

const char *csac_volume_warning(const csac_volume *vol, int i) {
    return vol && i >= 0 && i < vol->n_warnings ? vol->warnings[i] : NULL;
}
