/* safetensors.c - strict safetensors header parser and data conversion. */
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A header larger than this is not a weights file for this model. */
#define MAX_HEADER (64u << 20)

typedef struct {
    csac_ctx *ctx;
    const char *s, *p, *end;
    int status; /* first error wins */
} jp;

static int jfail(jp *j, const char *what) {
    if (j->status == CSAC_OK)
        j->status = csac__fail(j->ctx, CSAC_E_FORMAT, "safetensors header is not valid JSON: %s at byte %ld", what,
                               (long)(j->p - j->s) + 8);
    return j->status;
}

static int sfail(jp *j, const char *fmt, const char *a, const char *b) {
    if (j->status == CSAC_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, fmt, a, b ? b : "");
        j->status = csac__fail(j->ctx, CSAC_E_FORMAT, "safetensors header: %s", msg);
    }
    return j->status;
}

static void ws(jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int peek(jp *j) {
    ws(j);
    return j->p < j->end ? (unsigned char)*j->p : -1;
}

static int expect(jp *j, char c) {
    if (peek(j) != (unsigned char)c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return jfail(j, what);
    }
    j->p++;
    return CSAC_OK;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Writes the UTF-8 of code point cp; returns bytes written (0 if no room). */
static size_t put_utf8(char *o, size_t room, unsigned cp) {
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) { b[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = 0xC0 | (cp >> 6); b[1] = 0x80 | (cp & 63); n = 2; }
    else if (cp < 0x10000) { b[0] = 0xE0 | (cp >> 12); b[1] = 0x80 | ((cp >> 6) & 63); b[2] = 0x80 | (cp & 63); n = 3; }
    else { b[0] = 0xF0 | (cp >> 18); b[1] = 0x80 | ((cp >> 12) & 63); b[2] = 0x80 | ((cp >> 6) & 63); b[3] = 0x80 | (cp & 63); n = 4; }
    if (n > room) return 0;
    memcpy(o, b, n);
    return n;
}

/* String into out (NUL-terminated, cap bytes); too long is an error (names are short). */
static int jstring(jp *j, char *out, size_t cap) {
    if (expect(j, '"')) return j->status;
    size_t n = 0;
    for (;;) {
        if (j->p >= j->end) return jfail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"') break;
        if (c < 0x20) return jfail(j, "control character in string");
        unsigned cp = c;
        if (c == '\\') {
            if (j->p >= j->end) return jfail(j, "unterminated string");
            char e = *j->p++;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                if (j->end - j->p < 4) return jfail(j, "short \\u escape");
                cp = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval((unsigned char)j->p[i]);
                    if (h < 0) return jfail(j, "bad \\u escape");
                    cp = cp * 16 + (unsigned)h;
                }
                j->p += 4;
                if (cp >= 0xD800 && cp < 0xDC00) { /* surrogate pair */
                    unsigned lo = 0;
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') return jfail(j, "lone surrogate");
                    for (int i = 2; i < 6; i++) {
                        int h = hexval((unsigned char)j->p[i]);
                        if (h < 0) return jfail(j, "bad \\u escape");
                        lo = lo * 16 + (unsigned)h;
                    }
                    if (lo < 0xDC00 || lo > 0xDFFF) return jfail(j, "lone surrogate");
                    j->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp < 0xE000) {
                    return jfail(j, "lone surrogate");
                }
                break;
            }
            default: return jfail(j, "bad escape");
            }
            size_t w = put_utf8(out + n, cap - 1 - n, cp);
            if (!w) return sfail(j, "string longer than %s bytes", "127", NULL);
            n += w;
            continue;
        }
        if (n + 1 >= cap) {
            char lim[16];
            snprintf(lim, sizeof lim, "%zu", cap - 1);
            return sfail(j, "string longer than %s bytes", lim, NULL);
        }
        out[n++] = (char)c; /* UTF-8 bytes pass through */
    }
    out[n] = '\0';
    return CSAC_OK;
}

/* Non-negative JSON integer (no sign, fraction or exponent: shapes and offsets). */
static int juint(jp *j, uint64_t *v, const char *ctx_name, const char *field) {
    int c = peek(j);
    if (c < '0' || c > '9') {
        if (c == '-' ) return sfail(j, "tensor '%s': %s must be non-negative integers", ctx_name, field);
        return jfail(j, "expected a number");
    }
    if (c == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9') return jfail(j, "leading zero");
    uint64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p - '0');
        if (x > (UINT64_MAX - d) / 10) return sfail(j, "tensor '%s': %s value too large", ctx_name, field);
        x = x * 10 + d;
        j->p++;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return sfail(j, "tensor '%s': %s must be integers", ctx_name, field);
    *v = x;
    return CSAC_OK;
}

/* __metadata__: an object of strings, kept as "key=value; ..." */
static int jmetadata(jp *j, char **out, char *grid, size_t grid_n) {
    if (expect(j, '{')) return j->status;
    size_t cap = 256, n = 0;
    char *m = malloc(cap);
    if (!m) return j->status = csac__fail(j->ctx, CSAC_E_NOMEM, "out of memory reading metadata");
    m[0] = '\0';
    if (peek(j) == '}') {
        j->p++;
    } else {
        for (;;) {
            char k[256], v[4096];
            if (jstring(j, k, sizeof k) || expect(j, ':')) break;
            if (peek(j) != '"') { sfail(j, "__metadata__ value of '%s' is not a string", k, NULL); break; }
            if (jstring(j, v, sizeof v)) break;
            if (strcmp(k, "grid") == 0) { /* a longer value is wrong anyway: keep its start for the message */
                size_t L = strnlen(v, grid_n - 1);
                memcpy(grid, v, L);
                grid[L] = '\0';
            }
            size_t need = n + strlen(k) + strlen(v) + 4;
            if (need > cap) {
                while (cap < need) cap *= 2;
                char *m2 = realloc(m, cap);
                if (!m2) { j->status = csac__fail(j->ctx, CSAC_E_NOMEM, "out of memory reading metadata"); break; }
                m = m2;
            }
            n += (size_t)sprintf(m + n, "%s%s=%s", n ? "; " : "", k, v);
            int d = peek(j);
            if (d == ',') { j->p++; continue; }
            if (d == '}') { j->p++; break; }
            jfail(j, "expected ',' or '}'");
            break;
        }
    }
    if (j->status) { free(m); return j->status; }
    free(*out); /* a duplicate __metadata__ key is refused by the caller */
    *out = m;
    return CSAC_OK;
}

static int jtensor(jp *j, csac__st_tensor *t) {
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (expect(j, '{')) return j->status;
    if (peek(j) == '}') return sfail(j, "tensor '%s' has no dtype, shape or data_offsets", t->name, NULL);
    for (;;) {
        char key[64];
        if (jstring(j, key, sizeof key) || expect(j, ':')) return j->status;
        if (strcmp(key, "dtype") == 0 && !have_dtype) {
            if (peek(j) != '"') return sfail(j, "tensor '%s': dtype is not a string", t->name, NULL);
            if (jstring(j, t->dtype_name, sizeof t->dtype_name)) return j->status;
            t->dtype = strcmp(t->dtype_name, "F32") == 0 ? CSAC__DT_F32
                     : strcmp(t->dtype_name, "F16") == 0 ? CSAC__DT_F16 : CSAC__DT_OTHER;
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if (expect(j, '[')) return j->status;
            t->ndim = 0;
            if (peek(j) == ']') j->p++;
            else for (;;) {
                uint64_t v;
                if (t->ndim == CSAC__ST_MAX_DIMS) return sfail(j, "tensor '%s': more than 8 dimensions", t->name, NULL);
                if (juint(j, &v, t->name, "shape")) return j->status;
                if (v > ((uint64_t)1 << 40)) return sfail(j, "tensor '%s': %s value too large", t->name, "shape");
                t->shape[t->ndim++] = (int64_t)v;
                int d = peek(j);
                if (d == ',') { j->p++; continue; }
                if (d == ']') { j->p++; break; }
                return jfail(j, "expected ',' or ']'");
            }
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0 && !have_off) {
            if (expect(j, '[') || juint(j, &t->begin, t->name, "data_offsets") || expect(j, ',') ||
                juint(j, &t->end, t->name, "data_offsets"))
                return j->status;
            if (peek(j) != ']') return sfail(j, "tensor '%s': data_offsets must be [begin, end]", t->name, NULL);
            j->p++;
            have_off = 1;
        } else {
            return sfail(j, "tensor '%s': unexpected or repeated key '%s'", t->name, key);
        }
        int d = peek(j);
        if (d == ',') { j->p++; continue; }
        if (d == '}') { j->p++; break; }
        return jfail(j, "expected ',' or '}'");
    }
    if (!have_dtype) return sfail(j, "tensor '%s' has no dtype", t->name, NULL);
    if (!have_shape) return sfail(j, "tensor '%s' has no shape", t->name, NULL);
    if (!have_off) return sfail(j, "tensor '%s' has no data_offsets", t->name, NULL);
    return CSAC_OK;
}

static int by_begin(const void *a, const void *b) {
    const csac__st_tensor *x = *(const csac__st_tensor *const *)a, *y = *(const csac__st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int check_data(csac_ctx *ctx, csac__st_file *f) {
    for (int i = 0; i < f->n; i++) {
        csac__st_tensor *t = &f->t[i];
        if (t->end < t->begin)
            return csac__fail(ctx, CSAC_E_FORMAT, "tensor '%s': data_offsets [%llu, %llu] end before they begin",
                              t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
        if (t->end > f->data_len)
            return csac__fail(ctx, CSAC_E_TRUNCATED,
                              "file truncated: tensor '%s' data ends at byte %llu of the data section, which has %llu",
                              t->name, (unsigned long long)t->end, (unsigned long long)f->data_len);
        if (t->dtype == CSAC__DT_OTHER) continue; /* the caller names the dtype problem */
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] != 0 && numel > UINT64_MAX / 8 / (uint64_t)t->shape[d])
                return csac__fail(ctx, CSAC_E_FORMAT, "tensor '%s': shape too large", t->name);
            numel *= (uint64_t)t->shape[d];
        }
        uint64_t need = numel * (t->dtype == CSAC__DT_F32 ? 4 : 2);
        if (t->end - t->begin != need)
            return csac__fail(ctx, CSAC_E_FORMAT, "tensor '%s': data_offsets span %llu bytes, %s x %llu elements needs %llu",
                              t->name, (unsigned long long)(t->end - t->begin), t->dtype_name,
                              (unsigned long long)numel, (unsigned long long)need);
    }
    csac__st_tensor **order = malloc(sizeof *order * ((size_t)(unsigned)f->n + 1));
    if (!order) return csac__fail(ctx, CSAC_E_NOMEM, "out of memory");
    for (int i = 0; i < f->n; i++) order[i] = &f->t[i];
    qsort(order, (size_t)f->n, sizeof *order, by_begin);
    int st = CSAC_OK;
    /* compare with the furthest-reaching tensor so far, not just the previous
     * one: an empty tensor in between must not hide an overlap (fuzz/corpus/fuzz_safetensors/repro-*) */
    const csac__st_tensor *far = NULL;
    for (int i = 0; i < f->n && st == CSAC_OK; i++) {
        if (order[i]->end == order[i]->begin) continue; /* empty: occupies no bytes */
        if (far && order[i]->begin < far->end)
            st = csac__fail(ctx, CSAC_E_FORMAT, "tensors '%s' and '%s' overlap in the data section",
                            far->name, order[i]->name);
        if (!far || order[i]->end > far->end) far = order[i];
    }
    free(order);
    return st;
}

int csac__st_parse(csac_ctx *ctx, const void *buf, size_t n, csac__st_file *f) {
    memset(f, 0, sizeof *f);
    const uint8_t *b = buf;
    if (!buf || n < 8)
        return csac__fail(ctx, CSAC_E_TRUNCATED, "file truncated: %zu bytes, a safetensors file starts with an 8-byte header length", n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    if (hl > MAX_HEADER)
        return csac__fail(ctx, CSAC_E_FORMAT, "not a safetensors file: header length %llu is implausible",
                          (unsigned long long)hl);
    if (hl > n - 8)
        return csac__fail(ctx, CSAC_E_TRUNCATED, "file truncated: header declares %llu bytes, only %zu follow",
                          (unsigned long long)hl, n - 8);
    jp j = {ctx, (const char *)b + 8, (const char *)b + 8, (const char *)b + 8 + hl, CSAC_OK};
    int cap = 16;
    f->t = malloc(sizeof *f->t * (size_t)cap);
    if (!f->t) return csac__fail(ctx, CSAC_E_NOMEM, "out of memory");
    int have_meta = 0;
    if (expect(&j, '{')) goto fail;
    if (peek(&j) == '}') j.p++;
    else for (;;) {
        char name[CSAC__ST_MAX_NAME];
        if (jstring(&j, name, sizeof name) || expect(&j, ':')) goto fail;
        if (strcmp(name, "__metadata__") == 0) {
            if (have_meta) { sfail(&j, "repeated key '%s'", name, NULL); goto fail; }
            have_meta = 1;
            if (jmetadata(&j, &f->metadata, f->grid, sizeof f->grid)) goto fail;
        } else {
            for (int i = 0; i < f->n; i++)
                if (strcmp(f->t[i].name, name) == 0) { sfail(&j, "tensor '%s' appears twice", name, NULL); goto fail; }
            if (f->n == cap) {
                if (cap > (1 << 20)) { sfail(&j, "more than %s tensors", "1048576", NULL); goto fail; }
                cap *= 2;
                csac__st_tensor *t2 = realloc(f->t, sizeof *f->t * (size_t)cap);
                if (!t2) { j.status = csac__fail(ctx, CSAC_E_NOMEM, "out of memory"); goto fail; }
                f->t = t2;
            }
            csac__st_tensor *t = &f->t[f->n++];
            memset(t, 0, sizeof *t);
            memcpy(t->name, name, sizeof name);
            if (jtensor(&j, t)) goto fail;
        }
        int d = peek(&j);
        if (d == ',') { j.p++; continue; }
        if (d == '}') { j.p++; break; }
        jfail(&j, "expected ',' or '}'");
        goto fail;
    }
    if (peek(&j) != -1) { jfail(&j, "trailing characters after the header object"); goto fail; }
    f->data = b + 8 + hl;
    f->data_len = n - 8 - hl;
    if ((j.status = check_data(ctx, f)) != CSAC_OK) goto fail;
    return CSAC_OK;
fail:
    csac__st_free(f);
    return j.status;
}

void csac__st_free(csac__st_file *f) {
    if (!f) return;
    free(f->t);
    free(f->metadata);
    memset(f, 0, sizeof *f);
}

float csac__f16_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
    if (e == 0) {
        if (m == 0) bits = s;
        else { /* subnormal: normalise */
            e = 127 - 15 + 1;
            while (!(m & 1024)) { m <<= 1; e--; }
            bits = s | e << 23 | (m & 1023) << 13;
        }
    } else if (e == 31) {
        bits = s | 0x7F800000u | m << 13;
    } else {
        bits = s | (e + 127 - 15) << 23 | m << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t csac__f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t s = (x >> 16) & 0x8000, e = (x >> 23) & 255, m = x & 0x7FFFFF;
    if (e == 255) return (uint16_t)(s | 0x7C00 | (m ? 0x200 : 0));
    int ee = (int)e - 127 + 15;
    if (ee >= 31) return (uint16_t)(s | 0x7C00);
    if (ee <= 0) {
        if (ee < -10) return (uint16_t)s;
        m |= 0x800000;
        int shift = 14 - ee;
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(s | half);
    }
    uint32_t half = s | (uint32_t)ee << 10 | m >> 13, rem = m & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* carries into the exponent correctly */
    return (uint16_t)half;
}

void csac__st_to_f32(const csac__st_file *f, const csac__st_tensor *t, float *dst) {
    const uint8_t *p = f->data + t->begin;
    size_t n = (size_t)(t->end - t->begin) / (t->dtype == CSAC__DT_F32 ? 4 : 2);
    if (t->dtype == CSAC__DT_F32) {
        for (size_t i = 0; i < n; i++) {
            uint32_t x = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            memcpy(&dst[i], &x, 4);
        }
    } else {
        for (size_t i = 0; i < n; i++) dst[i] = csac__f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    }
}
