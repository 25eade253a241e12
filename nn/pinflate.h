/* pinflate.h - inflate one raw deflate stream on the pool's threads
 * (nn/pinflate.c). Internal. */
#ifndef CSAC_PINFLATE_H
#define CSAC_PINFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "threadpool.h"

/* Inflates the raw deflate stream in[0, n) (it must end with its final block
 * followed by exactly the 8-byte gzip trailer, whose CRC-32 is crc_want) into
 * out[0, need), using scratch[0, scratch_n) as work space. in is patched
 * (3 bytes) and restored before return, so it must be writable.
 *
 * Returns 1 when the whole stream was inflated to exactly need bytes with the
 * right CRC-32; 0 when this path does not apply or anything did not check out
 * (then out and scratch hold garbage and the caller inflates sequentially).
 * Each part has at least min_part compressed bytes (the readers use
 * CSAC__PINFLATE_MIN_PART; tests go smaller to split small streams).
 * *n_parts_out: the number of parts decoded in parallel (diagnostics). */
int csac__pinflate(csac_pool *pool, uint8_t *in, size_t n, uint8_t *out, size_t need, uint32_t crc_want,
                   uint8_t *scratch, size_t scratch_n, size_t min_part, int *n_parts_out);

/* Compressed bytes per part below which splitting does not pay. */
enum { CSAC__PINFLATE_MIN_PART = 2 << 20 };

#endif
