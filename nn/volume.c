/* PLACEHOLDER until the NIfTI reader lands (issue 3). */
#include "csac_internal.h"
#include <stddef.h>
int csac_volume_read_file(csac_ctx *ctx, const char *path, csac_volume **out) { (void)path; *out = NULL; return csac__fail(ctx, CSAC_E_UNSUPPORTED, "reader not built yet"); }
int csac_volume_read_buffer(csac_ctx *ctx, const void *buf, size_t n, csac_volume **out) { (void)buf; (void)n; *out = NULL; return csac__fail(ctx, CSAC_E_UNSUPPORTED, "reader not built yet"); }
void csac_volume_free(csac_volume *vol) { (void)vol; }
int csac_volume_get_info(const csac_volume *vol, csac_volume_info *info) { (void)vol; (void)info; return CSAC_E_STATE; }
const float *csac_volume_data(const csac_volume *vol) { (void)vol; return NULL; }
int csac_volume_n_warnings(const csac_volume *vol) { (void)vol; return 0; }
const char *csac_volume_warning(const csac_volume *vol, int i) { (void)vol; (void)i; return NULL; }
int csac_preprocess(csac_ctx *ctx, const csac_volume *vol, float *out, csac_grid *grid) { (void)vol; (void)out; (void)grid; return csac__fail(ctx, CSAC_E_UNSUPPORTED, "preprocessing not built yet"); }
