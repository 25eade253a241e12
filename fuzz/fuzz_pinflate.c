/* fuzz_pinflate.c - libFuzzer target: the parallel inflate (nn/pinflate.c),
 * which decodes untrusted deflate data with its own bit reader and Huffman
 * tables before handing parts to libdeflate. Tiny parts (64 bytes), 2 and 3
 * threads, so that even small inputs are split.
 *
 * Input: byte 0 picks the mode.
 *   even: the rest is a raw deflate stream + 8-byte gzip trailer (as in a
 *         .nii.gz after its header); the expected size is the trailer's ISIZE
 *         (at most 1 MiB).
 *   odd:  the rest is compressed here with zlib (level byte 1 % 10, strategy
 *         byte 2 % 5, a sync flush every 64 * (byte 3 + 1) bytes), then byte
 *         (bytes 4-5) of the stream is XORed with byte 6 (0: left intact).
 * Checks: whenever csac__pinflate says yes, the sequential path (one
 * libdeflate call) inflates the same stream to the same bytes, ending at the
 * trailer, with the trailer's CRC; the input comes back unchanged. */
#include "fuzz_common.h"
#include "libdeflate.h"
#include "pinflate.h"
#include "threadpool.h"

static csac_pool *pool2, *pool3;

/* The sequential path: one libdeflate call over the whole stream. */
static int sequential(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    size_t used = 0, got = 0;
    int ok = d && libdeflate_deflate_decompress_ex(d, in, n, out, cap, &used, &got) == LIBDEFLATE_SUCCESS &&
             used == n - 8 && got == cap; /* ends at the trailer, exactly cap bytes */
    libdeflate_free_decompressor(d);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 8) return 0;
    if (!pool2) {
        pool2 = csac_pool_new(2);
        pool3 = csac_pool_new(3);
        FUZZ_CHECK(pool2 && pool3, "csac_pool_new failed");
    }
    uint8_t *in = NULL;
    size_t n = 0;
    if (data[0] & 1) {
        size_t gn = 0;
        in = mk_gzip_ex(data + 7, size - 7, data[1] % 10, data[2] % 5, 64 * ((size_t)data[3] + 1), &gn);
        if (!in) return 0; /* out of room: the harness's limit, not a finding */
        n = gn - 10;       /* zlib's 10-byte gzip header off: deflate data + trailer */
        memmove(in, in + 10, n);
        size_t at = ((size_t)data[4] | (size_t)data[5] << 8) % n;
        in[at] ^= data[6];
    } else {
        if (size < 9) return 0; /* not even a trailer */
        n = size - 1;
        in = malloc(n);
        memcpy(in, data + 1, n);
    }
    const uint8_t *t = in + n - 8;
    uint32_t crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    size_t need = (size_t)t[4] | (size_t)t[5] << 8 | (size_t)t[6] << 16 | (size_t)t[7] << 24;
    if (need == 0 || need > (1u << 20)) {
        free(in);
        return 0;
    }
    uint8_t *keep = malloc(n), *out = malloc(need), *ref = malloc(need), *scratch = malloc(3 * need + 65536);
    memcpy(keep, in, n);
    for (int p = 0; p < 2; p++) {
        int parts = 0;
        int ok = csac__pinflate(p ? pool3 : pool2, in, n, out, need, crc, scratch, 3 * need + 65536, 64, &parts);
        FUZZ_CHECK(memcmp(in, keep, n) == 0, "the input was not restored");
        if (!ok) continue;
        FUZZ_CHECK(sequential(in, n, ref, need), "split in %d parts a stream libdeflate rejects", parts);
        FUZZ_CHECK(memcmp(out, ref, need) == 0, "split in %d parts, output differs from libdeflate's", parts);
        FUZZ_CHECK((uint32_t)crc32(0, ref, (uInt)need) == crc, "split a stream whose CRC is wrong");
    }
    free(keep);
    free(out);
    free(ref);
    free(scratch);
    free(in);
    return 0;
}
