/* PLACEHOLDER until the CSAC-Net-3D core lands (issue 4): every call reports that no model exists. */
#include "csac_internal.h"
#include <stddef.h>
void csac__model_free(csac_model *model) { (void)model; }
int csac_load_model_file(csac_ctx *ctx, const char *path) { (void)path; return csac__fail(ctx, CSAC_E_STATE, "model loading not built yet"); }
int csac_load_model_buffer(csac_ctx *ctx, const void *buf, size_t n) { (void)buf; (void)n; return csac__fail(ctx, CSAC_E_STATE, "model loading not built yet"); }
const char *csac_model_info(const csac_ctx *ctx) { (void)ctx; return ""; }
float *csac_model_input(csac_ctx *ctx) { (void)ctx; return NULL; }
int csac_forward(csac_ctx *ctx, csac_result *res) { (void)res; return csac__fail(ctx, CSAC_E_STATE, "no model"); }
const float *csac_layer_output(const csac_ctx *ctx, const char *name, int shape[4]) { (void)ctx; (void)name; (void)shape; return NULL; }
