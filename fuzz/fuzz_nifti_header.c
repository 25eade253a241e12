/* fuzz_nifti_header.c - libFuzzer target: NIfTI-1/2 header parsing.
 * The input is a whole file (plain or gzip, as the reader sniffs it) given to
 * csac_volume_read_buffer. There is no header-only entry point, so the limits
 * are tiny: the data behind any header is at most 16 KiB (4096 voxels), the
 * voxel work is negligible and nearly all time goes to sniffing, byte order,
 * dims, datatype, vox_offset, scaling and qform/sform checks, and libnifti's
 * header conversion (fast: >= 1 million executions in minutes). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    csac_params p;
    csac_ctx *ctx = fuzz_ctx(8 << 10, 16 << 10, 4096, 64, &p);
    csac_volume *vol = NULL;
    int st = csac_volume_read_buffer(ctx, data, size, &vol);
    fuzz_check_read(ctx, &p, st, vol);
    csac_volume_free(vol);
    csac_free(ctx);
    return 0;
}
