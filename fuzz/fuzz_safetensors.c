/* fuzz_safetensors.c - libFuzzer target: the safetensors loader.
 * First the container parser alone (csac__st_parse, internal), checking what
 * it promises on success: every tensor's bytes lie inside the data section,
 * match dtype x shape, and do not overlap; F32/F16 data is then converted.
 * Then the public csac_load_model_buffer (parser + the v1 layer-table checks):
 * a failed load must leave no model and a message. A complete model file is
 * 9.4 MB (4.7 M parameters), so the fuzzer reaches the table checks (names,
 * shapes, dtypes, missing tensors) but not the weight conversion; the
 * conversion of a full file is covered by tests/c/test_safetensors.c. */
#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    csac_params p;
    csac_ctx *ctx = fuzz_ctx(1 << 20, 1 << 20, 1 << 20, 512, &p);
    csac__st_file f;
    int st = csac__st_parse(ctx, data, size, &f);
    if (st == CSAC_OK) {
        FUZZ_CHECK(f.n >= 0 && (f.n == 0 || f.t), "tensor table");
        FUZZ_CHECK(f.data == data + (size - f.data_len), "data section");
        for (int i = 0; i < f.n; i++) {
            const csac__st_tensor *t = &f.t[i];
            FUZZ_CHECK(t->begin <= t->end && t->end <= f.data_len, "'%s' [%llu, %llu] outside %llu bytes", t->name,
                       (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)f.data_len);
            if (t->dtype == CSAC__DT_OTHER) continue;
            uint64_t numel = 1;
            for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
            FUZZ_CHECK(t->end - t->begin == numel * (t->dtype == CSAC__DT_F32 ? 4 : 2), "'%s' span", t->name);
            for (int j = 0; j < i; j++) {
                const csac__st_tensor *u = &f.t[j];
                int empty = t->begin == t->end || u->begin == u->end;
                FUZZ_CHECK(empty || t->end <= u->begin || u->end <= t->begin, "'%s' and '%s' overlap", t->name, u->name);
            }
            float *dst = malloc(sizeof(float) * (size_t)numel + 1);
            FUZZ_CHECK(dst != NULL, "harness out of memory");
            csac__st_to_f32(&f, t, dst);
            free(dst);
        }
        csac__st_free(&f);
    } else {
        FUZZ_CHECK(f.t == NULL && f.metadata == NULL, "a failed parse kept its tables");
        FUZZ_CHECK(csac_last_error(ctx)[0] != '\0', "%s without a message", csac_status_name(st));
    }
    st = csac_load_model_buffer(ctx, data, size);
    if (st != CSAC_OK) {
        FUZZ_CHECK(csac_model_input(ctx) == NULL, "a failed load installed a model");
        FUZZ_CHECK(csac_last_error(ctx)[0] != '\0', "%s without a message", csac_status_name(st));
    } else {
        FUZZ_CHECK(csac_model_input(ctx) != NULL && csac_model_info(ctx)[0] != '\0', "loaded model");
    }
    csac_free(ctx);
    return 0;
}
