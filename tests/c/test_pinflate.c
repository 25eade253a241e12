/* Proves the parallel inflate (nn/pinflate.c) is exact or declines:
 *  - on gzip streams written by zlib at levels 1, 6, 9 and strategies default,
 *    filtered, huffman-only, RLE, fixed and sync-flushed every 100 KB (as
 *    pigz), of CT-like int16 slices, text,
 *    random bytes and long zero runs, with 2, 3 and 4 threads and small parts:
 *    whenever it says yes the output equals the original bytes, and the input
 *    is restored byte for byte either way;
 *  - it really splits: CT-like data and text at the usual levels and
 *    strategies are decoded in 2 parts with 2 threads (a test that only ever
 *    declined would prove nothing);
 *  - streams it cannot split (no dynamic blocks: stored or fixed-only; a
 *    window that never clears: zero runs with matches) are declined;
 *  - one flipped bit anywhere (either part, or the trailer's CRC) is declined;
 *  - through the public reader (file and taken buffer): a synthetic uint8
 *    .nii.gz big enough to be split (1-3 threads) and two real pigz-written
 *    scans (1-2 threads; lungdx_A0002's part 1 starts at an odd bit and is
 *    followed by stored blocks) read to the same floats and HU summary, split
 *    whenever there are 2 or more threads. */
#include "csac.h"
#include "nifti_make.h"
#include "pinflate.h"
#include "test.h"
#include "threadpool.h"
#include "volume.h"

#include <stdio.h>
#include <unistd.h>

static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }

enum { KIND_CT, KIND_TEXT, KIND_RANDOM, KIND_ZEROS, N_KINDS };
static const char *KIND[N_KINDS] = {"ct", "text", "random", "zeros"};

/* noise: bits of uniform noise on the CT-like values */
static uint8_t *make_data(int kind, size_t n, int noise) {
    uint8_t *d = malloc(n);
    uint32_t s = 12345u + (uint32_t)kind;
    if (kind == KIND_CT) { /* 256x256 int16 slices: air, a body ellipse with texture, noise */
        int16_t *v = (int16_t *)d;
        for (size_t i = 0; i < n / 2; i++) {
            int x = (int)(i % 256) - 128, y = (int)(i / 256 % 256) - 128, z = (int)(i / 65536);
            int in = x * x * 9 + y * y * 16 < 110 * 110 * 9;
            int base = in ? 40 + (int)(30 * sin(x / 7.0) * cos((y + z) / 9.0)) : -1000;
            v[i] = (int16_t)(base + (int)(lcg(&s) >> (32 - noise)) - (1 << noise >> 1));
        }
        if (n & 1) d[n - 1] = 0;
    } else if (kind == KIND_TEXT) {
        static const char *W[] = {"lung ", "ground-glass ", "opacity ", "the ", "of ", "consolidation ", "bilateral ",
                                  "peripheral ", "pneumonia ", "and ", "CT ", "scan\n", "mild ", "COVID-19 "};
        size_t o = 0;
        while (o < n) {
            const char *w = W[(lcg(&s) >> 16) % 14];
            while (*w && o < n) d[o++] = (uint8_t)*w++;
        }
    } else if (kind == KIND_RANDOM) {
        for (size_t i = 0; i < n; i++) d[i] = (uint8_t)(lcg(&s) >> 24);
    } else {
        memset(d, 0, n);
        for (size_t i = 0; i < n; i += 100000) d[i] = 1;
    }
    return d;
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Runs csac__pinflate on a copy of gz's deflate data (zlib writes a 10-byte
 * header). Returns the parts (1 = declined); checks exactness and the restore. */
static int try_split(csac_pool *pool, const uint8_t *gz, size_t gzn, const uint8_t *orig, size_t n, const char *what) {
    size_t dn = gzn - 10;
    uint8_t *in = malloc(dn), *keep = malloc(dn);
    memcpy(in, gz + 10, dn);
    memcpy(keep, in, dn);
    size_t scratch_n = 2 * n + (1 << 20); /* a uint8 volume's room: 3n - n */
    uint8_t *out = malloc(n + 1), *scratch = malloc(scratch_n);
    int parts = 0;
    int ok = csac__pinflate(pool, in, dn, out, n, le32(gz + gzn - 8), scratch, scratch_n, 64 << 10, &parts);
    CHECK(memcmp(in, keep, dn) == 0, "%s: the input was not restored", what);
    if (ok) CHECK(memcmp(out, orig, n) == 0, "%s: split into %d parts but the output differs", what, parts);
    CHECK(ok ? parts >= 2 : parts == 1, "%s: ok %d with %d parts", what, ok, parts);
    free(in); free(keep); free(out); free(scratch);
    return ok ? parts : 1;
}

static void streams(void) {
    const size_t N = 2 << 20;
    const int levels[3] = {1, 6, 9};
    const int strat[5] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
    const char *sname[6] = {"default", "filtered", "huffman", "rle", "fixed", "sync-flushed"};
    csac_pool *pools[3] = {csac_pool_new(2), csac_pool_new(3), csac_pool_new(4)};
    int split_usual = 0, usual = 0;
    for (int k = 0; k < N_KINDS; k++) {
        uint8_t *d = make_data(k, N, 4);
        for (int li = 0; li < 3; li++)
            for (int si = 0; si < 6; si++) {
                if (k != KIND_TEXT && li == 2) continue; /* level 9: text only (slow on the rest, same block layout as 6) */
                if ((k == KIND_RANDOM || k == KIND_ZEROS) && li != 1) continue; /* one level is enough */
                size_t gzn;
                uint8_t *gz = mk_gzip_ex(d, N, levels[li], si == 5 ? Z_DEFAULT_STRATEGY : strat[si], si == 5 ? 100000 : 0, &gzn);
                CHECK(gz != NULL, "zlib failed");
                if (!gz) continue;
                for (int p = 0; p < 3; p++) {
                    if (csac_pool_size(pools[p]) < 2) continue; /* a build without threads */
                    char what[96];
                    snprintf(what, sizeof what, "%s level %d %s, %d threads", KIND[k], levels[li], sname[si], p + 2);
                    int parts = try_split(pools[p], gz, gzn, d, N, what);
                    if ((k == KIND_CT || k == KIND_TEXT) && (si <= 1 || si == 5) && p == 0) { /* 3-4 parts of 0.9 MB: too short for the window to clear */
                        usual++;
                        split_usual += parts >= 2;
                    }
                    if (si == 4 || k == KIND_RANDOM) CHECK(parts == 1, "%s: split a stream without dynamic blocks", what);
                    if (k == KIND_ZEROS && si != 2) CHECK(parts == 1, "%s: split zero runs (the window never clears)", what);
                }
                free(gz);
            }
        free(d);
    }
    if (csac_pool_size(pools[0]) >= 2)
        CHECK(usual > 0 && split_usual == usual, "CT and text, levels 1/6/9, default/filtered/sync-flushed, 2 threads: split %d of %d", split_usual, usual);
    printf("pinflate: %d of %d usual streams split\n", split_usual, usual);

    /* one flipped bit: in part 0, in part 1, in the trailer's CRC */
    uint8_t *d = make_data(KIND_CT, N, 4);
    size_t gzn;
    uint8_t *gz = mk_gzip_ex(d, N, 6, Z_DEFAULT_STRATEGY, 0, &gzn);
    size_t at[5] = {100, gzn / 4, gzn / 2 + 777, gzn * 3 / 4, gzn - 6};
    for (int i = 0; i < 5 && csac_pool_size(pools[0]) >= 2; i++) {
        gz[at[i]] ^= 0x10;
        char what[64];
        snprintf(what, sizeof what, "bit flipped at byte %zu of %zu", at[i], gzn);
        CHECK(try_split(pools[0], gz, gzn, d, N, what) == 1, "%s: accepted", what);
        gz[at[i]] ^= 0x10;
    }
    free(gz);
    free(d);
    for (int p = 0; p < 3; p++) csac_pool_free(pools[p]);
}

/* The reader. A synthetic uint8 volume (HU = v - 1024) whose .nii.gz is
 * > 4 MB (two 2 MB parts), then the real scans, which are pigz-written (block
 * boundaries byte-aligned, sync-flush stored blocks): P001 and lungdx_A0002
 * (whose part 1 starts at an odd bit). */
static void read_all(const char *path, const uint8_t *gz, size_t gzn, const char *name, const uint8_t *expect, int max_threads);

static void reader(void) {
    const int64_t nx = 256, ny = 256, nz = 128;
    size_t nvox = (size_t)(nx * ny * nz);
    uint8_t *d = malloc(nvox);
    uint32_t seed = 7;
    for (size_t i = 0; i < nvox; i++) {
        int x = (int)(i % 256) - 128, y = (int)(i / 256 % 256) - 128, z = (int)(i / 65536);
        d[i] = (uint8_t)(100 + (int)(40 * sin(x / 7.0) * cos((y + z) / 9.0)) + (int)(lcg(&seed) >> 27));
    }
    mk_spec s = mk_default(nx, ny, nz, DT_UINT8);
    s.slope = 1;
    s.inter = -1024;
    size_t nb, gzn;
    uint8_t *b = mk_nifti(&s, d, nvox, &nb);
    uint8_t *gz = mk_gzip_ex(b, nb, 1, Z_DEFAULT_STRATEGY, 0, &gzn);
    CHECK(gzn > 2 * (size_t)CSAC__PINFLATE_MIN_PART, "test volume too small to split: %zu bytes", gzn);
    char path[64];
    snprintf(path, sizeof path, "/tmp/csac_test_pinflate_%d.nii.gz", (int)getpid()); /* suites may overlap */
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(gz, 1, gzn, f) == gzn, "cannot write %s", path);
    if (f) fclose(f);
    read_all(path, gz, gzn, "synthetic uint8", d, 3);
    remove(path);
    free(gz);
    free(b);
    free(d);
    const char *real[2] = {"covidctmd_P001.nii.gz", "lungdx_A0002.nii.gz"};
    for (int i = 0; i < 2; i++) {
        const char *p = test_ct(real[i]);
        if (!p) {
            printf("skip %s: not in %s\n", real[i], CSAC_SHARED_CT);
            continue;
        }
        f = fopen(p, "rb");
        fseek(f, 0, SEEK_END);
        size_t n = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *g = malloc(n);
        CHECK(fread(g, 1, n, f) == n, "cannot read %s", p);
        fclose(f);
        read_all(p, g, n, real[i], NULL, 2);
        free(g);
    }
}

/* Reads the file (path, and its bytes as a taken buffer) with 1..max_threads
 * threads: identical floats and HU summary, split with 2 or more threads.
 * expect (uint8, HU = v - 1024) when known. */
static void read_all(const char *path, const uint8_t *gz, size_t gzn, const char *name, const uint8_t *expect, int max_threads) {
    float *ref = NULL;
    size_t nvox = 0;
    csac_volume_info iref;
    for (int threads = 1; threads <= max_threads; threads++)
        for (int via = 0; via < 2; via++) {
            csac_params p = csac_default_params();
            p.n_threads = threads;
            csac_ctx *ctx = NULL;
            CHECK(csac_init(&p, &ctx) == CSAC_OK, "init");
            csac_volume *vol = NULL;
            int st;
            const char *how = via ? "taken buffer" : "file";
            if (via == 0) {
                st = csac_volume_read_file(ctx, path, &vol);
            } else {
                uint8_t *copy = malloc(gzn);
                memcpy(copy, gz, gzn);
                st = csac_volume_read_buffer_take(ctx, copy, gzn, &vol);
            }
            CHECK(st == CSAC_OK, "%s, %d threads, %s: %s", name, threads, how, csac_last_error(ctx));
            if (st == CSAC_OK) {
                csac_volume_info in;
                csac_volume_get_info(vol, &in);
                /* int16: 2 parts at most fit in the float buffer's spare room; uint8: more */
                int nt = csac_n_threads(ctx), parts = vol->inflate_parts;
                CHECK(nt >= 2 ? parts >= 2 && parts <= nt : parts == 1, "%s, %d threads, %s: %d parts", name, nt, how, parts);
                if (!ref) {
                    nvox = (size_t)(in.dim[0] * in.dim[1] * in.dim[2]);
                    ref = malloc(nvox * sizeof(float));
                    memcpy(ref, csac_volume_data(vol), nvox * sizeof(float));
                    iref = in;
                    size_t bad = 0;
                    for (size_t i = 0; expect && i < nvox; i++) bad += ref[i] != (float)expect[i] - 1024;
                    CHECK(bad == 0, "%s, 1 thread: %zu voxels differ from the written values", name, bad);
                } else {
                    CHECK(memcmp(ref, csac_volume_data(vol), nvox * sizeof(float)) == 0, "%s, %d threads, %s: voxels differ from 1 thread",
                          name, threads, how);
                    CHECK(in.hu_min == iref.hu_min && in.hu_max == iref.hu_max && in.hu_mean == iref.hu_mean,
                          "%s, %d threads: HU summary differs", name, threads);
                }
            }
            csac_volume_free(vol);
            csac_free(ctx);
        }
    free(ref);
}

int main(void) {
    streams();
    reader();
    return test_summary("test_pinflate");
}
