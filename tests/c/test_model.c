/* Proves: the whole CSAC-Net-3D v1 forward matches PyTorch on the same
 * weights and input (deterministic random weights of seed 1, rebuilt in C by
 * csac_model_init_random; reference tests/data/model_random_v1.txt written by
 * tests/python/make_model_fixture.py): probability within 1e-5, logit within
 * 1e-4, the 288 pooled features within 1e-4 (and within 5e-6 relative, so
 * native and wasm builds, which both pass this, agree within 1e-5), and
 * checksums of the heatmap maps. Also: 1 and 2 threads give bitwise identical
 * outputs and maps; every map heatmaps need is exposed with its shape; a
 * forward without a model, or maps before a forward, are refused. */
#include <stdio.h>
#include <string.h>

#include "csac.h"
#include "test.h"

#define MAX_LAYERS 32

typedef struct {
    double probability, logit, features[CSAC_N_FEATURES];
    int n_layers;
    struct { char name[64]; int shape[4]; double sum, sumabs, wsum; } layer[MAX_LAYERS];
} reference;

static int read_reference(const char *path, reference *r) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int ok = 1, n;
    if (!fgets(line, sizeof line, f)) ok = 0; /* comment line */
    ok = ok && fscanf(f, " seed %*d probability %lf logit %lf features %d", &r->probability, &r->logit, &n) == 3 &&
         n == CSAC_N_FEATURES;
    for (int i = 0; ok && i < CSAC_N_FEATURES; i++) ok = fscanf(f, "%lf", &r->features[i]) == 1;
    ok = ok && fscanf(f, " layers %d", &r->n_layers) == 1 && r->n_layers <= MAX_LAYERS;
    if (ok && !fgets(line, sizeof line, f)) ok = 0; /* rest of the "layers" line */
    for (int i = 0; ok && i < r->n_layers; i++)
        ok = fscanf(f, "%63s %d %d %d %d %lf %lf %lf", r->layer[i].name, &r->layer[i].shape[0], &r->layer[i].shape[1],
                    &r->layer[i].shape[2], &r->layer[i].shape[3], &r->layer[i].sum, &r->layer[i].sumabs,
                    &r->layer[i].wsum) == 8;
    fclose(f);
    return ok;
}

static csac_ctx *make_ctx(int threads) {
    csac_params p = csac_default_params();
    p.n_threads = threads;
    csac_ctx *ctx = NULL;
    int st = csac_init(&p, &ctx);
    CHECK(st == CSAC_OK, "init: %s", ctx ? csac_last_error(ctx) : "NULL");
    return st == CSAC_OK ? ctx : (csac_free(ctx), NULL);
}

int main(void) {
    reference ref;
    memset(&ref, 0, sizeof ref);
    const char *path = CSAC_SOURCE_DIR "/tests/data/model_random_v1.txt";
    int have_ref = read_reference(path, &ref);
    CHECK(have_ref, "cannot read the PyTorch reference %s", path);

    csac_ctx *c1 = make_ctx(1), *c2 = make_ctx(2);
    if (!c1 || !c2) return test_summary("test_model");

    /* refused before a model exists */
    csac_result r1, r2;
    CHECK(csac_forward(c1, &r1) == CSAC_E_STATE, "forward without a model must fail");
    CHECK(csac_model_input(c1) == NULL, "no input buffer without a model");
    CHECK(csac_layer_output(c1, "merge", NULL) == NULL, "no maps without a model");

    CHECK(csac_model_init_random(c1, 1) == CSAC_OK, "init_random: %s", csac_last_error(c1));
    CHECK(csac_model_init_random(c2, 1) == CSAC_OK, "init_random: %s", csac_last_error(c2));
    CHECK(csac_layer_output(c1, "merge", NULL) == NULL, "no maps before a forward");
    CHECK(csac_model_input(c1) != NULL, "input buffer");
    CHECK(strstr(csac_model_info(c1), "random") != NULL, "model info '%s'", csac_model_info(c1));

    CHECK(csac_forward(c1, &r1) == CSAC_OK, "forward 1 thread: %s", csac_last_error(c1));
    CHECK(csac_forward(c2, &r2) == CSAC_OK, "forward 2 threads: %s", csac_last_error(c2));
    printf("probability %.7f logit %.6f (PyTorch %.7f %.6f), %.1f ms (1 thread) %.1f ms (2 threads)\n",
           r1.probability, r1.logit, ref.probability, ref.logit, r1.ms_forward, r2.ms_forward);

    /* parity with PyTorch */
    if (have_ref) {
        CHECK_NEAR(r1.probability, ref.probability, 1e-5, "probability vs PyTorch");
        CHECK_NEAR(r1.logit, ref.logit, 1e-4, "logit vs PyTorch");
        double worst = 0, worst_rel = 0;
        for (int i = 0; i < CSAC_N_FEATURES; i++) {
            double e = fabs(r1.features[i] - ref.features[i]);
            double rel = e / (fabs(ref.features[i]) > 1 ? fabs(ref.features[i]) : 1);
            if (e > worst) worst = e;
            if (rel > worst_rel) worst_rel = rel;
        }
        printf("features: max abs err %.3g, max rel err %.3g vs PyTorch\n", worst, worst_rel);
        CHECK(worst <= 1e-4, "features differ from PyTorch by %g", worst);
        CHECK(worst_rel <= 5e-6, "features differ from PyTorch by %g relative", worst_rel);
        for (int i = 0; i < ref.n_layers; i++) {
            int sh[4];
            const float *y = csac_layer_output(c1, ref.layer[i].name, sh);
            CHECK(y != NULL, "layer '%s' not exposed", ref.layer[i].name);
            if (!y) continue;
            CHECK(memcmp(sh, ref.layer[i].shape, sizeof sh) == 0, "layer '%s' shape [%d,%d,%d,%d]", ref.layer[i].name,
                  sh[0], sh[1], sh[2], sh[3]);
            long n = (long)sh[0] * sh[1] * sh[2] * sh[3];
            double s = 0, sa = 0, ws = 0;
            for (long k = 0; k < n; k++) {
                s += y[k];
                sa += fabs(y[k]);
                ws += y[k] * (double)(k % 7 - 3);
            }
            double tol = 1e-5 * ref.layer[i].sumabs;
            CHECK(fabs(s - ref.layer[i].sum) <= tol && fabs(ws - ref.layer[i].wsum) <= tol,
                  "layer '%s': sum %.9g wsum %.9g, PyTorch %.9g %.9g", ref.layer[i].name, s, ws, ref.layer[i].sum,
                  ref.layer[i].wsum);
        }
    }

    /* 1 vs 2 threads: bitwise */
    CHECK(memcmp(&r1.logit, &r2.logit, sizeof r1.logit) == 0, "logit 1 vs 2 threads: %.9g vs %.9g", r1.logit, r2.logit);
    CHECK(memcmp(r1.features, r2.features, sizeof r1.features) == 0, "features differ between 1 and 2 threads");

    /* the maps heatmaps need, with their shapes */
    static const struct { const char *name; int shape[4]; } maps[] = {
        {"input", {1, 64, 128, 128}},  {"stem", {16, 64, 64, 64}},      {"stem.pool", {16, 32, 32, 32}},
        {"stage1", {16, 32, 32, 32}},  {"stage1.0", {16, 32, 32, 32}},  {"stage2.pool", {16, 16, 16, 16}},
        {"stage2", {32, 16, 16, 16}},  {"stage3.pool", {32, 8, 8, 8}},  {"stage3", {64, 8, 8, 8}},
        {"stage4", {128, 4, 4, 4}},    {"subA.pool1", {16, 16, 16, 16}}, {"subA.pool2", {32, 4, 4, 4}},
        {"subB.pool1", {64, 8, 8, 8}}, {"subB.pool2", {64, 4, 4, 4}},   {"subC.pool1", {64, 4, 4, 4}},
        {"subA", {32, 4, 4, 4}},       {"subB", {64, 4, 4, 4}},         {"subC", {64, 4, 4, 4}},
        {"merge", {288, 4, 4, 4}},     {"stage2.0.proj", {32, 16, 16, 16}},
    };
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
        int sh[4] = {0, 0, 0, 0};
        const float *a = csac_layer_output(c1, maps[i].name, sh), *b = csac_layer_output(c2, maps[i].name, NULL);
        CHECK(a && b, "map '%s' missing", maps[i].name);
        if (!a || !b) continue;
        CHECK(memcmp(sh, maps[i].shape, sizeof sh) == 0, "map '%s' shape [%d,%d,%d,%d]", maps[i].name, sh[0], sh[1],
              sh[2], sh[3]);
        size_t n = (size_t)sh[0] * sh[1] * sh[2] * sh[3];
        CHECK(memcmp(a, b, n * sizeof(float)) == 0, "map '%s' differs between 1 and 2 threads", maps[i].name);
    }
    /* the merge map is the concat of the branch ends, and the features its mean */
    {
        const float *m = csac_layer_output(c1, "merge", NULL), *s4 = csac_layer_output(c1, "stage4", NULL);
        const float *sc = csac_layer_output(c1, "subC", NULL);
        CHECK(m == s4 && sc == m + 224 * 64, "merge is not the placement concat of stage4 .. subC");
        double mean = 0;
        for (int k = 0; k < 64; k++) mean += m[100 * 64 + k];
        CHECK_NEAR(mean / 64, r1.features[100], 1e-5, "feature 100 = mean of merge channel 100");
    }
    CHECK(csac_layer_output(c1, "nope", NULL) == NULL, "unknown map name");
    CHECK(csac_layer_output(c1, "stage9.0", NULL) == NULL, "unknown block name");

    /* a second forward on the same context gives the same answer (no state left behind) */
    csac_result r3;
    CHECK(csac_forward(c2, &r3) == CSAC_OK, "second forward");
    CHECK(memcmp(r3.features, r2.features, sizeof r3.features) == 0, "second forward differs");

    csac_free(c1);
    csac_free(c2);
    return test_summary("test_model");
}
