/* fuzz_nifti_data.c - libFuzzer target: NIfTI data reading (.nii and
 * .nii.gz): gunzip (zlib and the libdeflate whole-buffer path, concatenated
 * members, truncated streams; see fuzz_prepare for the mode byte), extension
 * skipping, every datatype and byte order, scaling, non-finite values,
 * geometry, the HU summary and warnings, and the read-time analysis
 * (decimation, lung/body centring). Limits: 1 Mi voxels, 8 MiB of raw bytes,
 * so one input costs at most ~40 MB and a few ms. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n;
    uint8_t *buf = fuzz_prepare(data, size, &n);
    csac_params p;
    csac_ctx *ctx = fuzz_ctx(1 << 20, 8 << 20, 1 << 20, 512, &p);
    csac_volume *vol = NULL;
    int st = csac_volume_read_buffer(ctx, buf, n, &vol);
    free(buf);
    fuzz_check_read(ctx, &p, st, vol);
    csac_volume_free(vol);
    csac_free(ctx);
    return 0;
}
