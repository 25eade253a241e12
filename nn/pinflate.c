/* pinflate.c - one deflate stream inflated by several threads.
 *
 * A .nii.gz is one deflate stream, which cannot be split where its writer did
 * not plan it: a block's start is known only after decoding everything before
 * it, and back-references reach 32 KiB into earlier output. Following
 * pugz/rapidgzip, part k >= 1 of the compressed bytes is decoded speculatively:
 *
 *  1. (all parts at once) Thread k scans bit offsets from its part's first
 *     byte for a plausible dynamic-Huffman block header, decodes from there
 *     with the 32 KiB window before it unknown (references into it become
 *     markers, 16-bit symbols 256 + window index) and stops at the first block
 *     boundary P_k after which the last 32 KiB of its output hold no markers.
 *     A candidate is accepted once two blocks decode.
 *  2. (all parts at once) Thread 0 runs libdeflate from the stream start to
 *     B_1 (where part 1 starts), made to stop there by writing an empty final
 *     block at B_1 (3 bytes of the input, restored after). Thread k runs
 *     libdeflate on a copy of its input from P_k to B_{k+1} (the same empty
 *     final block there), behind a stored block that holds the clean 32 KiB
 *     window and an empty block whose length puts P_k at its original bit
 *     alignment (stored blocks later in the part stay byte-aligned).
 *  3. (serial, cheap) In stream order, each part's markers are resolved from
 *     the previous part's last 32 KiB, the parts are moved into place, and the
 *     total size and the CRC-32 (combined from per-part CRCs) are checked.
 *
 * Any doubt (no block found, a decode error, a size or CRC mismatch, no room)
 * returns 0 and the caller inflates sequentially, so the result never depends
 * on this path; a wrong guess costs time, not correctness. */
#include "pinflate.h"

#include <stdlib.h>
#include <string.h>

#include "libdeflate.h"
#include "zlib.h"

enum {
    WSIZE = 32768,            /* deflate window                                  */
    TBITS = 15,               /* table index bits = the longest code               */
    MAX_PARTS = 8,
    MARK_CAP = 2 << 20,       /* symbols a part may decode before its window is clean (P001: 0.9 M) */
    SEARCH_BYTES = 256 << 10, /* how far past its start a part looks for a block (zlib's are < 100 KB) */
};

static const uint16_t LBASE[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t LEXT[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t DBASE[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
                                   513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t DEXT[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* ---- LSB-first bit reader over in[0, n); reads past the end give zeros ---- */
typedef struct {
    const uint8_t *in;
    size_t n, pos;   /* next byte to load */
    uint64_t buf;
    int cnt;         /* valid bits in buf */
} br_t;

static inline void br_fill(br_t *r) {
    while (r->cnt <= 56) {
        uint64_t v = r->pos < r->n ? r->in[r->pos] : 0;
        r->pos++;
        r->buf |= v << r->cnt;
        r->cnt += 8;
    }
}
static inline uint32_t br_bits(br_t *r, int k) { /* k <= 32, after br_fill */
    uint32_t v = (uint32_t)(r->buf & ((1ull << k) - 1));
    r->buf >>= k;
    r->cnt -= k;
    return v;
}
static void br_init(br_t *r, const uint8_t *in, size_t n, uint64_t bit) {
    r->in = in;
    r->n = n;
    r->pos = (size_t)(bit >> 3);
    r->buf = 0;
    r->cnt = 0;
    br_fill(r);
    br_bits(r, (int)(bit & 7));
}
static inline uint64_t br_tell(const br_t *r) { return (uint64_t)r->pos * 8 - (uint64_t)r->cnt; }
static inline int br_over(const br_t *r) { return br_tell(r) > (uint64_t)r->n * 8; }

/* ---- canonical Huffman tables: t[next TBITS bits] = sym << 4 | len (0: no code) ---- */

/* Kraft check; returns the unused code space (0 = complete), -1 if over-subscribed. */
static int kraft(const uint8_t *len, int n, int *count) {
    for (int l = 0; l < 16; l++) count[l] = 0;
    for (int i = 0; i < n; i++) count[len[i]]++;
    count[0] = 0;
    int left = 1;
    for (int l = 1; l < 16; l++) {
        left = (left << 1) - count[l];
        if (left < 0) return -1;
    }
    return left;
}

/* incomplete: 0 = the code must be complete; 1 = a lone code (or none) may be incomplete */
static int build(uint16_t *t, int tbits, const uint8_t *len, int n, int incomplete) {
    int count[16];
    int left = kraft(len, n, count);
    if (left < 0) return -1;
    if (left > 0) {
        int used = 0;
        for (int l = 1; l < 16; l++) used += count[l];
        if (!incomplete || used > 1) return -1;
    }
    int next[16], code = 0;
    for (int l = 1; l < 16; l++) {
        code = (code + count[l - 1]) << 1;
        next[l] = code;
    }
    memset(t, 0, sizeof(uint16_t) << tbits);
    for (int i = 0; i < n; i++) {
        int l = len[i];
        if (!l) continue;
        if (l > tbits) return -1;
        unsigned c = (unsigned)next[l]++, rev = 0;
        for (int b = 0; b < l; b++) rev |= ((c >> b) & 1u) << (l - 1 - b);
        for (unsigned j = rev; j < (1u << tbits); j += 1u << l) t[j] = (uint16_t)(i << 4 | l);
    }
    return 0;
}

static inline int decode(br_t *r, const uint16_t *t) {
    uint16_t e = t[r->buf & ((1u << TBITS) - 1)];
    int l = e & 15;
    if (!l) return -1;
    r->buf >>= l;
    r->cnt -= l;
    return e >> 4;
}

/* ---- the speculative decoder (u16 output, markers for the unknown window) ---- */
typedef struct {
    uint16_t lit[1 << TBITS], dist[1 << TBITS];
    uint16_t flit[1 << TBITS], fdist[1 << TBITS]; /* the fixed code (each part its own: no shared state) */
    uint16_t *out;
    size_t o, cap;     /* symbols written, room                             */
    long lastm;        /* index of the last marker written; -1 = the window */
} mdec_t;

static void fixed_tables(mdec_t *m) {
    uint8_t l[288];
    for (int i = 0; i < 288; i++) l[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    build(m->flit, TBITS, l, 288, 0);
    for (int i = 0; i < 32; i++) l[i] = 5;
    build(m->fdist, TBITS, l, 32, 0);
}

/* The header of a dynamic block (after its 3 bits): the two tables. */
static int read_dynamic(br_t *r, mdec_t *m) {
    static const uint8_t ORD[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    br_fill(r);
    int hlit = (int)br_bits(r, 5) + 257, hdist = (int)br_bits(r, 5) + 1, hclen = (int)br_bits(r, 4) + 4;
    if (hlit > 286 || hdist > 30) return -1;
    uint8_t cl[19] = {0}, lens[286 + 30];
    for (int i = 0; i < hclen; i++) {
        br_fill(r);
        cl[ORD[i]] = (uint8_t)br_bits(r, 3);
    }
    uint16_t clt[1 << 7];
    if (build(clt, 7, cl, 19, 0)) return -1;
    int i = 0;
    while (i < hlit + hdist) {
        br_fill(r);
        uint16_t e = clt[r->buf & 127];
        int l = e & 15, s = e >> 4;
        if (!l) return -1;
        br_bits(r, l);
        if (s < 16) {
            lens[i++] = (uint8_t)s;
            continue;
        }
        int rep, v = 0;
        if (s == 16) {
            if (i == 0) return -1;
            v = lens[i - 1];
            rep = 3 + (int)br_bits(r, 2);
        } else if (s == 17) {
            rep = 3 + (int)br_bits(r, 3);
        } else {
            rep = 11 + (int)br_bits(r, 7);
        }
        if (i + rep > hlit + hdist) return -1;
        while (rep--) lens[i++] = (uint8_t)v;
    }
    if (!lens[256]) return -1;
    int count[16];
    if (kraft(lens, hlit, count) != 0) return -1; /* checked before the 32 K-entry fill */
    if (build(m->lit, TBITS, lens, hlit, 0) || build(m->dist, TBITS, lens + hlit, hdist, 1)) return -1;
    return 0;
}

/* One block (after its 3 header bits). 0 ok, -1 bad data or no room. */
static int m_block(br_t *r, mdec_t *m, int btype) {
    uint16_t *out = m->out;
    size_t o = m->o;
    if (btype == 0) {
        br_bits(r, r->cnt & 7);
        br_fill(r);
        uint32_t len = br_bits(r, 16), nlen = br_bits(r, 16);
        if (len != (~nlen & 0xffffu) || o + len > m->cap) return -1;
        for (uint32_t i = 0; i < len; i++) {
            br_fill(r);
            out[o++] = (uint16_t)br_bits(r, 8);
        }
        m->o = o;
        return br_over(r) ? -1 : 0;
    }
    if (btype == 2 && read_dynamic(r, m)) return -1;
    const uint16_t *lt = btype == 2 ? m->lit : m->flit, *dt = btype == 2 ? m->dist : m->fdist;
    for (;;) {
        if (o + 258 > m->cap) return -1;
        br_fill(r);
        int s = decode(r, lt);
        if (s < 0) return -1;
        if (s < 256) {
            out[o++] = (uint16_t)s;
            continue;
        }
        if (s == 256) break;
        s -= 257;
        if (s >= 29) return -1;
        unsigned len = LBASE[s] + br_bits(r, LEXT[s]);
        int ds = decode(r, dt);
        if (ds < 0 || ds >= 30) return -1;
        size_t d = DBASE[ds] + br_bits(r, DEXT[ds]);
        if (d > o + WSIZE) return -1;
        for (unsigned k = 0; k < len; k++, o++) {
            uint16_t v = d > o ? (uint16_t)(256 + WSIZE - (d - o)) : out[o - d];
            out[o] = v;
            if (v >= 256) m->lastm = (long)o;
        }
    }
    m->o = o;
    return br_over(r) ? -1 : 0;
}

/* Quick filter: could a non-final dynamic block start at this bit? Its header
 * fields in range, and its code-length code complete (zlib's always are);
 * most bit offsets fail here within a few instructions. Reads in[bit/8 + 10]. */
static inline int plausible(const uint8_t *in, uint64_t bit) {
    const uint8_t *p = in + (bit >> 3);
    uint32_t v = ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24) >> (bit & 7);
    if ((v & 7) != 4 || ((v >> 3) & 31) > 29 || ((v >> 8) & 31) > 29) return 0;
    int hclen = (int)((v >> 13) & 15) + 4, kraft = 0;
    for (int i = 0; i < hclen; i++) {
        uint64_t q = bit + 17 + 3 * (uint64_t)i;
        int l = (int)((((uint32_t)in[q >> 3] | (uint32_t)in[(q >> 3) + 1] << 8) >> (q & 7)) & 7);
        if (l) kraft += 128 >> l;
    }
    return kraft == 128;
}

/* ---- one part ---- */
typedef struct {
    /* step 1 */
    uint64_t b, p;        /* block start found, clean point (bits)          */
    int last;             /* part decoded to the stream's end in step 1     */
    mdec_t *m;            /* its speculative output, m->o symbols           */
    /* step 2 */
    uint8_t *dst;         /* libdeflate output: window + rest               */
    size_t dst_cap, got;  /* got: bytes after the window                    */
    uint8_t *sh;          /* window + input copy that libdeflate reads      */
    size_t sh_cap;
    int sh_owned;
    uint32_t crc;         /* of the bytes after the window (or of part 0)    */
    int found, done;      /* step 1 found a start and a clean point; step 2 decoded */
} part_t;

typedef struct {
    uint8_t *in;
    size_t n, end;        /* n: input bytes; end = n - 8 (trailer)          */
    uint8_t *out;
    size_t need;
    int np;
    part_t part[MAX_PARTS];
} job_t;

/* Step 1 for part k: find a block start at or after its first byte, decode
 * with markers to a clean block boundary (or the stream's end). */
static void find_task(void *arg, int ith, int nth) {
    job_t *j = arg;
    (void)nth;
    if (ith == 0 || ith >= j->np) return;
    part_t *pt = &j->part[ith];
    size_t from = j->end / (size_t)j->np * (size_t)ith;
    size_t to = from + SEARCH_BYTES < j->end - 16 ? from + SEARCH_BYTES : j->end - 16;
    mdec_t *m = pt->m;
    fixed_tables(m);
    for (uint64_t b = (uint64_t)from * 8; b < (uint64_t)to * 8; b++) {
        if (!plausible(j->in, b)) continue;
        br_t r;
        br_init(&r, j->in, j->end, b);
        m->o = 0;
        m->lastm = -1;
        int blocks = 0, ended = 0; /* blocks decoded; the stream's final block among them */
        for (;;) {
            br_fill(&r);
            int fin = (int)br_bits(&r, 1), bt = (int)br_bits(&r, 2);
            if (bt == 3 || (blocks == 0 && (fin || bt != 2)) || m_block(&r, m, bt)) break;
            blocks++;
            if (fin) {
                ended = 1;
                break;
            }
            if (blocks >= 2 && (long)m->o - 1 - m->lastm >= WSIZE) break;
        }
        if (blocks < 2 && !ended) continue; /* not a block start: try the next bit */
        if (!ended && (long)m->o - 1 - m->lastm < WSIZE) return; /* a later block failed, or the window never cleared */
        pt->last = ended;
        pt->b = b;
        pt->p = br_tell(&r);
        pt->found = 1;
        return;
    }
}

/* ---- building part k's stream for libdeflate ---- */
typedef struct {
    uint8_t *p; /* zeroed */
    uint64_t bit;
} bw_t;

static void bw_put(bw_t *w, uint32_t v, int n) { /* n bits of v, LSB first */
    for (int i = 0; i < n; i++, w->bit++)
        if (v >> i & 1) w->p[w->bit >> 3] |= (uint8_t)(1u << (w->bit & 7));
}
static void bw_code(bw_t *w, uint32_t code, int len) { /* a Huffman code, MSB first */
    for (int i = len - 1; i >= 0; i--) bw_put(w, code >> i & 1, 1);
}

/* An empty, non-final dynamic block of 206 + 3m bits (m code-length codes
 * sent, 7..19), chosen so that its length is r mod 8: the original stream
 * then continues at its own bit alignment, so stored blocks after it stay
 * byte-aligned and its bytes are copied, not shifted. Literal/length code:
 * 0..254 8 bits, 255 and 256 9 bits (complete); no distance codes. Writes into
 * zeroed dst; returns the bits. */
static uint64_t align_block(uint8_t *dst, int r) {
    int m = 7;
    while ((206 + 3 * m - r) % 8) m++;
    bw_t w = {dst, 0};
    bw_put(&w, 0, 1);     /* not final */
    bw_put(&w, 2, 2);     /* dynamic */
    bw_put(&w, 0, 5);     /* 257 literal/length codes */
    bw_put(&w, 0, 5);     /* 1 distance code */
    bw_put(&w, (uint32_t)m - 4, 4);
    static const uint8_t CL[7] = {2, 0, 0, 2, 2, 0, 2}; /* in the order 16 17 18 0 8 7 9: four 2-bit codes */
    for (int i = 0; i < m; i++) bw_put(&w, i < 7 ? CL[i] : 0, 3);
    /* canonical code-length codes: 0 -> 00, 8 -> 01, 9 -> 10, 16 -> 11 */
    bw_code(&w, 1, 2);                                        /* 8 (literal 0)            */
    for (int i = 0; i < 41; i++) { bw_code(&w, 3, 2); bw_put(&w, 3, 2); } /* repeat 6 x 41    */
    bw_code(&w, 3, 2); bw_put(&w, 2, 2);                      /* repeat 5: literals 1..254 */
    bw_code(&w, 3, 2); bw_put(&w, 0, 2);                      /* repeat 3                 */
    bw_code(&w, 2, 2); bw_code(&w, 2, 2);                     /* 9, 9 (255, end of block) */
    bw_code(&w, 0, 2);                                        /* 0 (no distance code)     */
    bw_code(&w, 511, 9);                                      /* end of block             */
    return w.bit;
}

/* An empty final fixed block (10 bits) at bit 'at' of dst; bits after it cleared. */
static void stop_block(uint8_t *dst, uint64_t at) {
    size_t q = (size_t)(at >> 3);
    int r = (int)(at & 7);
    dst[q] = (uint8_t)((dst[q] & ((1u << r) - 1)) | (3u << r));
    dst[q + 1] = (uint8_t)(r == 7 ? 1 : 0);
    dst[q + 2] = 0;
}

enum { HEAD = 5 + WSIZE + 40 }; /* stored window block + align block, at most */

/* Step 2: thread 0 from the stream start to B_1 (in patched), thread k from P_k. */
static void inflate_task(void *arg, int ith, int nth) {
    job_t *j = arg;
    (void)nth;
    if (ith >= j->np) return;
    part_t *pt = &j->part[ith];
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    if (!d) return;
    size_t got = 0;
    if (ith == 0) {
        size_t nin = (size_t)(j->part[1].b >> 3) + 3;
        if (libdeflate_deflate_decompress_ex(d, j->in, nin, j->out, j->need, NULL, &got) == LIBDEFLATE_SUCCESS) {
            pt->got = got;
            pt->crc = libdeflate_crc32(0, j->out, got);
            pt->done = 1;
        }
    } else if (!pt->last) {
        /* [stored block: the clean window][align block][input bytes from P_k
         * to B_{k+1} (an empty final block there) or to the trailer] */
        uint8_t *sh = pt->sh;
        const uint16_t *win = pt->m->out + pt->m->o - WSIZE;
        sh[0] = 0; /* BFINAL 0, BTYPE 00, padding */
        sh[1] = WSIZE & 255; sh[2] = WSIZE >> 8; sh[3] = (uint8_t)~sh[1]; sh[4] = (uint8_t)~sh[2];
        for (int i = 0; i < WSIZE; i++) sh[5 + i] = (uint8_t)win[i];
        memset(sh + 5 + WSIZE, 0, 40);
        int r = (int)(pt->p & 7);
        size_t e = 5 + WSIZE + (size_t)(align_block(sh + 5 + WSIZE, r) >> 3); /* holds bit P_k at bit r */
        size_t p8 = (size_t)(pt->p >> 3);
        int lastpart = ith == j->np - 1;
        size_t last = lastpart ? j->end - 1 : (size_t)(j->part[ith + 1].b >> 3); /* last input byte copied */
        sh[e] = (uint8_t)((sh[e] & ((1u << r) - 1)) | (j->in[p8] & ~((1u << r) - 1)));
        memcpy(sh + e + 1, j->in + p8 + 1, last - p8);
        size_t len = e + 1 + (last - p8);
        if (!lastpart) {
            stop_block(sh, j->part[ith + 1].b - 8 * (uint64_t)p8 + 8 * (uint64_t)e);
            len += 2;
        }
        memset(sh + len, 0, 8);
        size_t used = 0;
        if (libdeflate_deflate_decompress_ex(d, sh, len, pt->dst, pt->dst_cap, &used, &got) == LIBDEFLATE_SUCCESS &&
            got >= WSIZE && (!lastpart || used - e + p8 == j->end)) { /* the last part ends at the trailer */
            pt->got = got - WSIZE;
            pt->crc = libdeflate_crc32(0, pt->dst + WSIZE, pt->got);
            pt->done = 1;
        }
    } else {
        pt->got = 0;
        pt->crc = 0;
        pt->done = 1;
    }
    libdeflate_free_decompressor(d);
}

typedef struct {
    uint8_t *dst;
    const uint8_t *src;
    size_t n;
} copy_job;

static void copy_task(void *arg, int ith, int nth) {
    copy_job *c = arg;
    long lo, hi, nb = (long)((c->n + 65535) >> 16);
    csac_split(nb, ith, nth, &lo, &hi);
    size_t a = (size_t)lo << 16, b = (size_t)hi << 16;
    if (b > c->n) b = c->n;
    if (a < b) memcpy(c->dst + a, c->src + a, b - a);
}

int csac__pinflate(csac_pool *pool, uint8_t *in, size_t n, uint8_t *out, size_t need, uint32_t crc_want,
                   uint8_t *scratch, size_t scratch_n, size_t min_part, int *n_parts_out) {
    *n_parts_out = 1;
    int np = csac_pool_size(pool);
    if (np > MAX_PARTS) np = MAX_PARTS;
    if (min_part < 64) min_part = 64;
    if ((size_t)np * min_part > n) np = (int)(n / min_part);
    /* as many parts as fit in the scratch area (no memory beyond the volume's) */
    /* per part k >= 1: its input copy, its output (+10 %) and its marker
     * buffer, all in the scratch area */
    size_t mark_syms = 0;
    for (; np >= 2; np--) {
        size_t fixed = n / (size_t)np * (size_t)(np - 1) + need / (size_t)np * (size_t)(np - 1) / 10 * 11 +
                       (size_t)(np - 1) * (3 * WSIZE + 256 + sizeof(mdec_t));
        mark_syms = fixed < scratch_n ? (scratch_n - fixed) / (size_t)(np - 1) / sizeof(uint16_t) : 0;
        if (mark_syms > MARK_CAP) mark_syms = MARK_CAP;
        if (mark_syms >= 4 * WSIZE) break;
    }
    const size_t mark_bytes = sizeof(uint16_t) * mark_syms;
    if (np < 2) return 0;
    job_t *j = calloc(1, sizeof *j);
    if (!j) return 0;
    j->in = in;
    j->n = n;
    j->end = n - 8;
    j->out = out;
    j->need = need;
    j->np = np;
    int ok = 0;
    uint8_t saved[3];
    int patched = 0;
    /* the decoders and their marker buffers at the end of the scratch area
     * (64-byte aligned): no heap beyond the volume's (a wasm heap grows by 20 %) */
    const size_t mdec_bytes = (sizeof(mdec_t) + 63) & ~(size_t)63;
    uint8_t *mark_at = (uint8_t *)((uintptr_t)(scratch + scratch_n) & ~(uintptr_t)63) - mdec_bytes * (size_t)(np - 1);
    for (int k = 1; k < np; k++) {
        j->part[k].m = (mdec_t *)(void *)(mark_at + mdec_bytes * (size_t)(k - 1));
        j->part[k].m->out = (uint16_t *)(void *)(mark_at - mark_bytes * (size_t)k);
        j->part[k].m->cap = mark_syms;
    }
    scratch_n = (size_t)(mark_at - mark_bytes * (size_t)(np - 1) - scratch);
    csac_pool_run(pool, find_task, j);

    /* parts in order, each clean point before the next part's start */
    for (int k = 1; k < np; k++) {
        part_t *pt = &j->part[k];
        if (!pt->found || pt->b <= j->part[k - 1].b + 64 || (pt->last && k != np - 1)) goto done;
        if (k > 1 && j->part[k - 1].p + 64 > pt->b) goto done;
        if (k == 1 && (pt->p >> 3) <= (pt->b >> 3) + 3) goto done; /* part 1 reads past the patch */
        if (pt->last && (pt->p + 7) >> 3 != j->end) goto done;       /* the final block must end at the trailer */
    }
    /* room: input copies first, then the outputs, in the scratch area when they fit */
    {
        size_t sh_total = 0;
        for (int k = 1; k < np; k++) {
            part_t *pt = &j->part[k];
            if (pt->last) continue;
            size_t last = k == np - 1 ? j->end - 1 : (size_t)(j->part[k + 1].b >> 3);
            pt->sh_cap = HEAD + (last - (size_t)(pt->p >> 3)) + 3 + 8;
            sh_total += (pt->sh_cap + 63) & ~(size_t)63;
        }
        size_t want_out = need / (size_t)np * (size_t)(np - 1) / 10 * 11 + (size_t)np * WSIZE; /* with a margin */
        size_t at = 0;
        int sh_in_scratch = sh_total + want_out <= scratch_n; /* else (the estimate was short) malloc */
        for (int k = 1; k < np; k++) {
            part_t *pt = &j->part[k];
            if (pt->last) continue;
            if (sh_in_scratch) {
                pt->sh = scratch + at;
                at += (pt->sh_cap + 63) & ~(size_t)63;
            } else {
                pt->sh = malloc(pt->sh_cap);
                pt->sh_owned = 1;
                if (!pt->sh) goto done;
            }
        }
        /* the rest, split in proportion to each part's compressed bits */
        uint64_t bits_total = 0;
        for (int k = 1; k < np; k++) bits_total += (k == np - 1 ? (uint64_t)n * 8 : j->part[k + 1].b) - j->part[k].b;
        size_t room = scratch_n - at;
        for (int k = 1; k < np; k++) {
            uint64_t bits = (k == np - 1 ? (uint64_t)n * 8 : j->part[k + 1].b) - j->part[k].b;
            size_t cap = (size_t)((double)room * (double)bits / (double)bits_total) & ~(size_t)63;
            if (cap < 2 * WSIZE) goto done;
            j->part[k].dst = scratch + at;
            j->part[k].dst_cap = cap;
            at += cap;
        }
    }

    /* step 2, with an empty final block written at B_1 for thread 0 */
    {
        uint64_t b1 = j->part[1].b;
        memcpy(saved, in + (b1 >> 3), 3);
        patched = 1;
        stop_block(in, b1);
        csac_pool_run(pool, inflate_task, j);
    }
    for (int k = 0; k < np; k++) if (!j->part[k].done) goto done;

    /* step 3: resolve, place, check */
    {
        size_t off = j->part[0].got;
        uLong crc = j->part[0].crc;
        for (int k = 1; k < np; k++) {
            part_t *pt = &j->part[k];
            size_t mo = pt->m->o;
            if (off < WSIZE || off + mo + pt->got > need) goto done;
            const uint8_t *win = out + off - WSIZE;
            const uint16_t *ms = pt->m->out;
            uint8_t *o = out + off;
            for (size_t i = 0; i < mo; i++) o[i] = ms[i] < 256 ? (uint8_t)ms[i] : win[ms[i] - 256];
            crc = crc32_combine(crc, libdeflate_crc32(0, o, mo), (z_off_t)mo);
            if (pt->got) {
                copy_job c = {o + mo, pt->dst + WSIZE, pt->got};
                csac_pool_run(pool, copy_task, &c);
                crc = crc32_combine(crc, pt->crc, (z_off_t)pt->got);
            }
            off += mo + pt->got;
        }
        ok = off == need && (uint32_t)crc == crc_want;
    }
done:
    if (patched) memcpy(in + (j->part[1].b >> 3), saved, 3);
    for (int k = 1; k < np; k++)
        if (j->part[k].sh_owned) free(j->part[k].sh);
    if (ok) *n_parts_out = np;
    free(j);
    return ok;
}
