/*
 * csac_wasm.c - the few helpers that JavaScript needs on top of csac.h:
 * flat results instead of structs, and JSON for descriptive data. Everything
 * else is called directly (see exports.txt). Buffers are the caller's.
 */
#include "csac.h"
#include "volume.h" /* the read timings: diagnostics, not API */

#include <emscripten/emscripten.h>
#include <stdio.h>
#include <string.h>

/* A context with n threads and default limits; 0 when out of memory. On other
 * failures the context exists and csac_last_error says why (JS checks it). */
EMSCRIPTEN_KEEPALIVE csac_ctx *csac_wasm_init(int n_threads, int *status) {
    csac_params p = csac_default_params();
    p.n_threads = n_threads;
    csac_ctx *ctx = NULL;
    *status = csac_init(&p, &ctx);
    return ctx;
}

/* Self-test as [threads_used, simd_lanes, max_abs_err]. */
EMSCRIPTEN_KEEPALIVE int csac_wasm_selftest(csac_ctx *ctx, double *out3) {
    csac_selftest_report r;
    int st = csac_selftest(ctx, &r);
    out3[0] = r.threads_used;
    out3[1] = r.simd_lanes;
    out3[2] = r.max_abs_err;
    return st;
}

/* Result as [probability, logit, ms_read, ms_preprocess, ms_forward]; the
 * 288 features go to features (may be NULL). */
static void flatten(const csac_result *r, double *out5, float *features) {
    out5[0] = r->probability;
    out5[1] = r->logit;
    out5[2] = r->ms_read;
    out5[3] = r->ms_preprocess;
    out5[4] = r->ms_forward;
    if (features) memcpy(features, r->features, sizeof r->features);
}

EMSCRIPTEN_KEEPALIVE int csac_wasm_forward(csac_ctx *ctx, double *out5, float *features) {
    csac_result r;
    memset(&r, 0, sizeof r);
    int st = csac_forward(ctx, &r);
    if (st == CSAC_OK) flatten(&r, out5, features);
    return st;
}

static int json_str(char *b, int cap, int n, const char *key, const char *v) {
    return n + snprintf(b + n, n < cap ? (size_t)(cap - n) : 0, "\"%s\":\"%s\",", key, v);
}

/* Volume header summary and warnings as one JSON object; returns the length
 * it needs (call again with a bigger buffer if that is >= cap). */
EMSCRIPTEN_KEEPALIVE int csac_wasm_volume_json(const csac_volume *vol, char *b, int cap) {
    csac_volume_info in;
    if (csac_volume_get_info(vol, &in) != CSAC_OK) return -1;
    int n = snprintf(b, (size_t)cap, "{");
#define ROOM (n < cap ? (size_t)(cap - n) : 0)
    n += snprintf(b + n, ROOM, "\"nifti_version\":%d,\"dim\":[%lld,%lld,%lld],\"n_volumes\":%lld,",
                  in.nifti_version, (long long)in.dim[0], (long long)in.dim[1], (long long)in.dim[2],
                  (long long)in.n_volumes);
    n += snprintf(b + n, ROOM, "\"spacing\":[%.6g,%.6g,%.6g],\"datatype\":%d,", in.spacing[0], in.spacing[1],
                  in.spacing[2], in.datatype);
    n = json_str(b, cap, n, "datatype_name", in.datatype_name ? in.datatype_name : "");
    n += snprintf(b + n, ROOM, "\"scl_slope\":%.9g,\"scl_inter\":%.9g,\"qform_code\":%d,\"sform_code\":%d,",
                  in.scl_slope, in.scl_inter, in.qform_code, in.sform_code);
    n = json_str(b, cap, n, "orientation", in.orientation);
    n = json_str(b, cap, n, "affine_source", in.affine_source ? in.affine_source : "");
    n += snprintf(b + n, ROOM, "\"vox2world\":[");
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            n += snprintf(b + n, ROOM, "%.9g%s", in.vox2world[r][c], r == 3 && c == 3 ? "]," : ",");
    n += snprintf(b + n, ROOM, "\"hu_min\":%.6g,\"hu_max\":%.6g,\"hu_mean\":%.6g,", in.hu_min, in.hu_max, in.hu_mean);
    n += snprintf(b + n, ROOM, "\"lung_ml\":%.1f,\"grid_zoom\":%.6g,", in.lung_ml, in.grid_zoom);
    n += snprintf(b + n, ROOM, "\"read_ms\":{\"inflate\":%.3f,\"gunzip\":%.3f,\"analyse\":%.3f,\"inflate_parts\":%d},\"warnings\":[",
                  vol->ms_inflate, vol->ms_gunzip, vol->ms_analyse, vol->inflate_parts);
    int nw = csac_volume_n_warnings(vol);
    for (int i = 0; i < nw; i++) {
        n += snprintf(b + n, ROOM, "%s\"", i ? "," : "");
        for (const char *s = csac_volume_warning(vol, i); s && *s; s++) { /* escape for JSON */
            if (*s == '"' || *s == '\\') n += snprintf(b + n, ROOM, "\\%c", *s);
            else if ((unsigned char)*s < 0x20) n += snprintf(b + n, ROOM, " ");
            else n += snprintf(b + n, ROOM, "%c", *s);
        }
        n += snprintf(b + n, ROOM, "\"");
    }
    n += snprintf(b + n, ROOM, "]}");
#undef ROOM
    return n;
}

/* csac_heatmap_resample with int slice bounds (int64 arguments are awkward in
 * JS without BigInt integration). */
EMSCRIPTEN_KEEPALIVE int csac_wasm_heatmap_resample(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid,
                                                    const float *grid_map, int k0, int k1, float *out) {
    return csac_heatmap_resample(ctx, vol, grid, grid_map, k0, k1, out);
}
