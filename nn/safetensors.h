/*
 * safetensors.h - strict reader of the safetensors container (internal):
 * 8-byte little-endian header length, a JSON header
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * then the raw little-endian data. The parser is our own (no third-party
 * code); it checks JSON syntax, the header schema, and that every tensor's
 * bytes are in bounds, match dtype x shape, and do not overlap another's.
 * Which names and shapes a model needs is checked by the caller (model.c).
 */
#ifndef CSAC_SAFETENSORS_H
#define CSAC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "csac_internal.h"

#define CSAC__ST_MAX_NAME 128
#define CSAC__ST_MAX_DIMS 8

enum { CSAC__DT_OTHER = 0, CSAC__DT_F32, CSAC__DT_F16 };

typedef struct csac__st_tensor {
    char name[CSAC__ST_MAX_NAME];
    char dtype_name[16];
    int dtype; /* CSAC__DT_* */
    int ndim;
    int64_t shape[CSAC__ST_MAX_DIMS];
    uint64_t begin, end; /* byte offsets into the data section */
} csac__st_tensor;

typedef struct csac__st_file {
    int n;
    csac__st_tensor *t;   /* n entries, in header order        */
    const uint8_t *data;  /* the data section (inside the buffer) */
    uint64_t data_len;
    char *metadata;       /* "key=value; ..." or NULL            */
    char grid[32];        /* __metadata__ "grid" (the model grid version), "" if absent */
} csac__st_file;

/* Parses buf (not copied: f->data points into it). On failure returns a
 * CSAC_E_TRUNCATED / CSAC_E_FORMAT status with the message in ctx. */
int csac__st_parse(csac_ctx *ctx, const void *buf, size_t n, csac__st_file *f);
void csac__st_free(csac__st_file *f);
/* Converts tensor data (F32 or F16) to floats. */
void csac__st_to_f32(const csac__st_file *f, const csac__st_tensor *t, float *dst);
float csac__f16_to_f32(uint16_t h);
uint16_t csac__f32_to_f16(float f); /* round to nearest even (tests and export) */

#endif
