/* Proves: the safetensors loader reads a complete F32 or F16 file of the v1
 * layer table (from a buffer and from a file) into exactly the weights the
 * generator made (the forward is bitwise that of csac_model_init_random), keeps
 * __metadata__ for csac_model_info, converts F16 exactly, and refuses each kind
 * of bad file with its own status and a message naming the problem: truncated
 * file / header / data, header not JSON, duplicate / missing / extra tensor,
 * wrong shape, unsupported dtype, inconsistent or overlapping data_offsets,
 * non-finite values. A failed load leaves the previous model in place.
 * (Loading the same bytes from a file gives the same model as from a buffer.) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csac.h"
#include "model.h"
#include "safetensors.h"
#include "test.h"

typedef struct {
    int f16;                  /* all tensors F16                          */
    const char *skip;         /* leave this tensor out                    */
    const char *extra;        /* add a tensor of this name, shape [4]     */
    const char *dup;          /* write this tensor twice                  */
    const char *reshape;      /* declare this tensor with shape drop-last */
    const char *bad_dtype;    /* declare this tensor as BF16              */
    const char *bad_span;     /* declare one element fewer in data_offsets */
    const char *overlap;      /* point this tensor at the previous one's data */
    const char *nan;          /* put a NaN into this tensor               */
    const char *meta;         /* __metadata__ object text                 */
} opts;

typedef struct { char *p; size_t n, cap; } sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k > 0) b->n += (size_t)k < b->cap - b->n ? (size_t)k : b->cap - b->n - 1;
}

static int is(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The seed-1 generator weights, made once (tests only: static cache). */
static float *cache[256];
static const float *weights(int i, const csac__tensor_spec *t) {
    if (!cache[i]) {
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
        cache[i] = malloc(sizeof(float) * n);
        csac__rand_tensor(t, 1, cache[i]);
    }
    return cache[i];
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define GRID_META "{\"grid\":\"" STR(CSAC_GRID_VERSION) "\"}"

/* A safetensors file of the v1 tensors with seed-1 random weights, altered by o. */
static unsigned char *build(const opts *o, size_t *n_out) {
    int nt = csac__model_n_tensors();
    sbuf h = {malloc(1 << 16), 0, 1 << 16};
    size_t data_cap = 0;
    for (int i = 0; i < nt; i++) {
        csac__tensor_spec t;
        csac__model_tensor(i, &t);
        size_t n = 1;
        for (int d = 0; d < t.ndim; d++) n *= (size_t)t.shape[d];
        data_cap += 2 * n * 4 + 64;
    }
    unsigned char *data = malloc(data_cap);
    float *tmp = malloc(sizeof(float) * 128 * 128 * 27);
    size_t off = 0, prev_off = 0;
    put(&h, "{");
    put(&h, "\"__metadata__\":%s", o->meta ? o->meta : GRID_META);
    for (int i = 0; i < nt; i++) {
        csac__tensor_spec t;
        csac__model_tensor(i, &t);
        if (is(o->skip, t.name)) continue;
        size_t n = 1;
        for (int d = 0; d < t.ndim; d++) n *= (size_t)t.shape[d];
        memcpy(tmp, weights(i, &t), sizeof(float) * n);
        if (is(o->nan, t.name)) tmp[n / 2] = NAN;
        int nd = t.ndim;
        if (is(o->reshape, t.name)) { nd--; n /= (size_t)t.shape[nd]; }
        int es = o->f16 || is(o->bad_dtype, t.name) ? 2 : 4;
        for (size_t k = 0; k < n; k++) {
            if (es == 2) {
                uint16_t v = csac__f32_to_f16(tmp[k]);
                data[off + 2 * k] = (unsigned char)v;
                data[off + 2 * k + 1] = (unsigned char)(v >> 8);
            } else {
                memcpy(data + off + 4 * k, &tmp[k], 4);
            }
        }
        for (int rep = 0; rep < (is(o->dup, t.name) ? 2 : 1); rep++) {
            put(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", h.n > 1 ? "," : "", t.name,
                is(o->bad_dtype, t.name) ? "BF16" : es == 2 ? "F16" : "F32");
            for (int d = 0; d < nd; d++) put(&h, "%s%lld", d ? "," : "", (long long)t.shape[d]);
            size_t b0 = is(o->overlap, t.name) ? prev_off : off;
            size_t b1 = b0 + n * es - (is(o->bad_span, t.name) ? (size_t)es : 0);
            put(&h, "],\"data_offsets\":[%zu,%zu]}", b0, b1);
        }
        prev_off = off;
        off += n * es;
    }
    if (o->extra) {
        put(&h, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[%zu,%zu]}", o->extra, off, off + 16);
        memset(data + off, 0, 16);
        off += 16;
    }
    put(&h, "}");
    while (h.n % 8) put(&h, " ");
    unsigned char *file = malloc(8 + h.n + off);
    for (int i = 0; i < 8; i++) file[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    memcpy(file + 8, h.p, h.n);
    memcpy(file + 8 + h.n, data, off);
    *n_out = 8 + h.n + off;
    free(h.p);
    free(data);
    free(tmp);
    return file;
}

static void set_input(csac_ctx *ctx, csac_ctx *from) {
    float *dst = csac_model_input(ctx), *src = csac_model_input(from);
    if (dst && src) memcpy(dst, src, sizeof(float) * CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W);
}

static csac_ctx *ctx_new(void) {
    csac_ctx *ctx = NULL;
    csac_params p = csac_default_params();
    csac_init(&p, &ctx);
    return ctx;
}

/* Loads a buffer made with o and checks the status and a message fragment. */
static void expect_fail(const opts *o, int status, const char *fragment, const char *what) {
    size_t n;
    unsigned char *f = build(o, &n);
    csac_ctx *ctx = ctx_new();
    int st = csac_load_model_buffer(ctx, f, n);
    CHECK(st == status, "%s: status %s, expected %s (%s)", what, csac_status_name(st), csac_status_name(status),
          csac_last_error(ctx));
    CHECK(strstr(csac_last_error(ctx), fragment) != NULL, "%s: message '%s' lacks '%s'", what, csac_last_error(ctx),
          fragment);
    CHECK(csac_model_input(ctx) == NULL, "%s: a failed load must not install a model", what);
    csac_free(ctx);
    free(f);
}

static void expect_raw(const char *bytes, size_t n, int status, const char *fragment, const char *what) {
    csac_ctx *ctx = ctx_new();
    int st = csac_load_model_buffer(ctx, bytes, n);
    CHECK(st == status, "%s: status %s, expected %s (%s)", what, csac_status_name(st), csac_status_name(status),
          csac_last_error(ctx));
    CHECK(strstr(csac_last_error(ctx), fragment) != NULL, "%s: message '%s' lacks '%s'", what, csac_last_error(ctx),
          fragment);
    csac_free(ctx);
}

/* header text -> file bytes with a correct length prefix and no data */
static size_t raw_header(const char *json, char *out) {
    size_t n = strlen(json);
    for (int i = 0; i < 8; i++) out[i] = (char)((uint64_t)n >> (8 * i));
    memcpy(out + 8, json, n);
    return 8 + n;
}

static void test_f16(void) {
    CHECK(csac__f16_to_f32(0x3C00) == 1.0f && csac__f16_to_f32(0xC000) == -2.0f, "f16 1, -2");
    CHECK(csac__f16_to_f32(0x0001) == 5.9604644775390625e-08f, "f16 smallest subnormal");
    CHECK(csac__f16_to_f32(0x7BFF) == 65504.0f, "f16 max");
    CHECK(isinf(csac__f16_to_f32(0x7C00)) && isnan(csac__f16_to_f32(0x7E00)), "f16 inf, nan");
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = csac__f16_to_f32((uint16_t)h);
        if (!isnan(f) && csac__f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    CHECK(csac__f32_to_f16(1.0f + 1.0f / 4096) == 0x3C00, "round half to even (down)");
    CHECK(csac__f32_to_f16(1.0f + 6.0f / 4096) == 0x3C02, "round half to even (up)");
}

int main(void) {
    test_f16();
    csac_result ref, r;
    csac_ctx *rnd = ctx_new();
    CHECK(csac_model_init_random(rnd, 1) == CSAC_OK, "init_random");
    CHECK(csac_forward(rnd, &ref) == CSAC_OK, "forward");

    /* a complete F32 file = the generator's weights, bit for bit */
    opts o = {0};
    o.meta = "{\"model\":\"csac-net-3d-v1\",\"grid\":\"" STR(CSAC_GRID_VERSION) "\",\"note\":\"caf\\u00e9 \\\"q\\\"\"}";
    size_t n;
    unsigned char *f = build(&o, &n);
    csac_ctx *ctx = ctx_new();
    CHECK(csac_load_model_buffer(ctx, f, n) == CSAC_OK, "load F32: %s", csac_last_error(ctx));
    set_input(ctx, rnd);
    CHECK(csac_forward(ctx, &r) == CSAC_OK, "forward F32 file");
    CHECK(memcmp(&r.logit, &ref.logit, sizeof r.logit) == 0, "F32 file logit %.9g vs generator %.9g", r.logit, ref.logit);
    CHECK(strstr(csac_model_info(ctx), "model=csac-net-3d-v1") && strstr(csac_model_info(ctx), "note=caf\xc3\xa9 \"q\"") &&
          strstr(csac_model_info(ctx), "F32"), "info '%s'", csac_model_info(ctx));

    /* the same from a file; a failed load afterwards keeps the loaded model */
    char path[256];
    snprintf(path, sizeof path, "/tmp/csac_test_%d.safetensors", (int)getpid());
    FILE *fp = fopen(path, "wb");
    CHECK(fp && fwrite(f, 1, n, fp) == n, "write %s", path);
    if (fp) fclose(fp);
    csac_ctx *cf = ctx_new();
    CHECK(csac_load_model_file(cf, path) == CSAC_OK, "load file: %s", csac_last_error(cf));
    float *in_before = csac_model_input(cf);
    CHECK(in_before && strcmp(csac_model_info(cf), csac_model_info(ctx)) == 0, "file info '%s'", csac_model_info(cf));
    CHECK(csac_load_model_buffer(cf, f, n / 2) == CSAC_E_TRUNCATED, "half a file is truncated: %s", csac_last_error(cf));
    CHECK(csac_model_input(cf) == in_before && strstr(csac_model_info(cf), "model=csac-net-3d-v1"),
          "previous model kept after a failed load");
    CHECK(csac_load_model_file(cf, "/nonexistent/w.safetensors") == CSAC_E_IO, "missing file");
    CHECK(strstr(csac_last_error(cf), "/nonexistent/w.safetensors") != NULL, "message names the path");
    remove(path);
    csac_free(cf);
    csac_free(ctx);
    free(f);

    /* F16: converted exactly (same forward as an F32 file of the rounded values is implied by the round trip) */
    memset(&o, 0, sizeof o);
    o.f16 = 1;
    f = build(&o, &n);
    ctx = ctx_new();
    CHECK(csac_load_model_buffer(ctx, f, n) == CSAC_OK, "load F16: %s", csac_last_error(ctx));
    set_input(ctx, rnd);
    CHECK(csac_forward(ctx, &r) == CSAC_OK, "forward F16");
    CHECK(fabs(r.probability - ref.probability) < 2e-3, "F16 probability %.6f vs F32 %.6f", r.probability, ref.probability);
    CHECK(r.logit != ref.logit, "F16 weights must differ from F32 ones somewhere");
    CHECK(strstr(csac_model_info(ctx), "F16") != NULL, "info '%s'", csac_model_info(ctx));
    csac_free(ctx);
    free(f);

    /* each failure, its status and message */
    memset(&o, 0, sizeof o);
    o.skip = "head.fc3.bias";
    expect_fail(&o, CSAC_E_WEIGHTS, "missing tensor 'head.fc3.bias' (shape [1])", "missing");
    memset(&o, 0, sizeof o);
    o.extra = "stage5.0.conv1.weight";
    expect_fail(&o, CSAC_E_WEIGHTS, "unexpected tensor 'stage5.0.conv1.weight'", "extra");
    memset(&o, 0, sizeof o);
    o.reshape = "stage2.0.conv1.weight";
    expect_fail(&o, CSAC_E_WEIGHTS, "tensor 'stage2.0.conv1.weight': shape [32,16,3,3,3] expected, file has [32,16,3,3]",
                "shape");
    memset(&o, 0, sizeof o);
    o.bad_dtype = "subA.conv2.weight";
    expect_fail(&o, CSAC_E_UNSUPPORTED, "tensor 'subA.conv2.weight': dtype BF16 is not supported", "dtype");
    memset(&o, 0, sizeof o);
    o.bad_span = "stem.bias";
    expect_fail(&o, CSAC_E_FORMAT, "tensor 'stem.bias': data_offsets span 60 bytes", "span");
    memset(&o, 0, sizeof o);
    o.overlap = "stem.bias";
    expect_fail(&o, CSAC_E_FORMAT, "overlap", "overlap");
    memset(&o, 0, sizeof o);
    o.dup = "head.fc1.bias";
    expect_fail(&o, CSAC_E_FORMAT, "tensor 'head.fc1.bias' appears twice", "duplicate");
    memset(&o, 0, sizeof o);
    o.nan = "stage3.2.conv1.weight";
    expect_fail(&o, CSAC_E_DATA, "tensor 'stage3.2.conv1.weight' has a non-finite value", "nan");
    memset(&o, 0, sizeof o);
    o.meta = "{\"epochs\":75}";
    expect_fail(&o, CSAC_E_FORMAT, "__metadata__ value of 'epochs' is not a string", "metadata");
    /* weights for another model grid (v6 and older name none) are refused: plausible but wrong answers */
    o.meta = "{\"version\":\"csac_v6\"}";
    expect_fail(&o, CSAC_E_WEIGHTS, "the weights name no model grid", "no grid");
    o.meta = "{}";
    expect_fail(&o, CSAC_E_WEIGHTS, "the weights name no model grid", "empty metadata");
    o.meta = "{\"grid\":\"1\"}";
    expect_fail(&o, CSAC_E_WEIGHTS, "trained on model grid '1'; this core computes grid " STR(CSAC_GRID_VERSION), "grid 1");
    o.meta = "{\"grid\":\"2x\"}";
    expect_fail(&o, CSAC_E_WEIGHTS, "model grid '2x'", "grid not a number");
    o.meta = "{\"grid\":\"" STR(CSAC_GRID_VERSION) "\"}";
    f = build(&o, &n);
    csac_ctx *g = ctx_new();
    CHECK(csac_load_model_buffer(g, f, n) == CSAC_OK, "this core's grid loads: %s", csac_last_error(g));
    csac_free(g);
    free(f);

    /* truncation at each level */
    memset(&o, 0, sizeof o);
    f = build(&o, &n);
    expect_raw((const char *)f, 5, CSAC_E_TRUNCATED, "8-byte header length", "5 bytes");
    expect_raw((const char *)f, 100, CSAC_E_TRUNCATED, "header declares", "header cut");
    expect_raw((const char *)f, n - 1, CSAC_E_TRUNCATED, "truncated: tensor", "data cut");
    free(f);

    /* headers that are not JSON, or not a safetensors header */
    char b[512];
    struct { const char *json; int status; const char *frag; } bad[] = {
        {"not json", CSAC_E_FORMAT, "not valid JSON"},
        {"{\"a\" {}}", CSAC_E_FORMAT, "not valid JSON: expected ':'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", CSAC_E_FORMAT, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", CSAC_E_FORMAT, "leading zero"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", CSAC_E_FORMAT, "must be integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", CSAC_E_FORMAT, "non-negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", CSAC_E_FORMAT, "tensor 'a' has no data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", CSAC_E_FORMAT, "unexpected or repeated key 'x'"},
        {"{\"a\\q\":{}}", CSAC_E_FORMAT, "bad escape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", CSAC_E_FORMAT, "trailing characters"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", CSAC_E_FORMAT, "end before they begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", CSAC_E_TRUNCATED, "data section, which has 0"},
        {"{}", CSAC_E_WEIGHTS, "missing tensor 'stem.weight'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = raw_header(bad[i].json, b);
        expect_raw(b, len, bad[i].status, bad[i].frag, bad[i].json);
    }
    /* an implausible header length is a format error, not an allocation */
    memcpy(b, "\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10);
    expect_raw(b, 10, CSAC_E_FORMAT, "implausible", "huge header length");

    csac_free(rnd);
    for (int i = 0; i < 256; i++) free(cache[i]);
    return test_summary("test_safetensors");
}
