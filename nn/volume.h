/* volume.h - internal layout of a csac_volume (nn/volume.c reads it,
 * nn/preprocess.c resamples it) and the internal NIfTI writer
 * (nn/nifti_write.c). Not public. */
#ifndef CSAC_VOLUME_H
#define CSAC_VOLUME_H

#include "csac_internal.h"

#include <stdint.h>
#include <stdio.h>

enum { CSAC__MAX_WARNINGS = 8, CSAC__WARNING_LEN = 256 };

/* An input header's geometry as stored, so that outputs on the same voxels
 * (heatmaps) carry exactly the input's qform and sform. */
typedef struct csac__nifti_geom {
    int qform_code, sform_code;
    double quatern[3], qoffset[3], qfac;
    double pixdim[3];
    double srow[3][4];
} csac__nifti_geom;

struct csac_volume {
    csac_volume_info info;     /* header summary; string fields point into this struct */
    char datatype_name[16];
    float *data;               /* dim0*dim1*dim2 floats, HU, i fastest      */
    double world2vox[4][4];    /* inverse of info.vox2world                 */
    csac__nifti_geom geom;     /* the header's qform and sform, as stored   */

    /* Box-decimated copy (anti-aliasing + shrink in one pass; see preprocess.c):
     * voxel (I,J,K) is the mean of original voxels [I*f0, I*f0+f0) x ... */
    float *dec;
    int64_t dec_dim[3];
    int dec_f[3];
    int dec_off[3];   /* boxes start at voxel -dec_off: anchored at the anatomical end, see preprocess.c */
    double dec2world[4][4];
    double world2dec[4][4];

    double centre_world[3];    /* model-grid centre (RAS+ mm): lungs, else body */
    int lungs_found;
    int slice_axis;            /* source axis closest to world z (0..2)       */

    double ms_inflate;         /* read + gunzip + convert to HU               */
    double ms_analyse;         /* decimate + body/lung detection              */
    int inflate_parts;         /* gzip fast path inflated in this many parallel parts (1: serially; 0: not that path) */
    double ms_gunzip;          /* of ms_inflate, the gzip fast path's inflate alone (0: other paths) */

    int n_warnings;
    char warnings[CSAC__MAX_WARNINGS][CSAC__WARNING_LEN];
};

/* nn/preprocess.c: box decimation and centring, run once at read time. */
int csac__volume_analyse(csac_ctx *ctx, csac_volume *vol);
void csac__volume_warn(csac_volume *vol, const char *fmt, ...) CSAC_PRINTF(2, 3);

/* 4x4 helpers (row-major, m[row][col]). */
void csac__mat44_mul(const double a[4][4], const double b[4][4], double out[4][4]);
int csac__mat44_inverse(const double m[4][4], double out[4][4]); /* 0 if singular */

/* ---- nn/nifti_write.c: float32 NIfTI-1 (.nii, or .nii.gz when gzip != 0) ----
 * The affine (voxel (i,j,k,1) -> world RAS+ mm) is written as the sform and,
 * where it is a rotation times spacing, also as the qform, both with xform_code
 * (1 = scanner, 2 = aligned). data: dim[0]*dim[1]*dim[2] floats, i fastest. */
typedef struct csac_nifti_out {
    const float *data;         /* float32 voxels, or NULL when data_u8 is set   */
    const uint8_t *data_u8;    /* uint8 voxels, stored with scl_slope = slope    */
    float slope;
    int64_t dim[3];
    double affine[4][4];
    int xform_code;
    const char *descrip;       /* up to 79 characters, may be NULL */
    const csac__nifti_geom *geom; /* when set: this qform/sform instead of affine */
    int gzip;
} csac_nifti_out;

int csac__nifti_write_file(csac_ctx *ctx, const csac_nifti_out *img, const char *path);
/* *out is malloc'd (free it with free()); *n its size in bytes. */
int csac__nifti_write_buffer(csac_ctx *ctx, const csac_nifti_out *img, void **out, size_t *n);

#endif
