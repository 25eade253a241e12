/* model.c - the CSAC-Net-3D graph: layer table, weights loading, arena, forward.
 *
 * The table below is the C side of the single definition of the network
 * (train/csacnet.py is the PyTorch side; tests/python/parity_live.py checks
 * that they agree). Rows run in order; every row's output stays in the arena
 * after a forward (heatmaps and the Grad-CAM backward read them). The merge
 * map is a concat by placement: the four branch ends write straight into
 * their channel range of "merge".
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "safetensors.h"

enum { OP_CONV, OP_POOL };

typedef struct layer_def {
    const char *name;
    int op;
    const char *src, *res; /* input row (NULL = model input), residual row or NULL */
    int cin, cout, k, dil; /* pool: k = kernel = stride                            */
    int stride[3];         /* (d, h, w)                                            */
    int relu;
    int merge_c;           /* >= 0: output goes to channels [merge_c, +cout) of merge */
} layer_def;

/* conv3 + BN(folded) + ReLU; conv3 + BN + residual + ReLU; 1x1x1 projection + BN;
 * subnet atrous conv + bias + ReLU; max-pool k = stride. */
#define CONV(n, src, ci, co, k, dil, s) {n, OP_CONV, src, NULL, ci, co, k, dil, {s, s, s}, 1, -1}
#define RESC(n, src, res, ci, co) {n, OP_CONV, src, res, ci, co, 3, 1, {1, 1, 1}, 1, -1}
#define PROJ(n, src, ci, co, s) {n, OP_CONV, src, NULL, ci, co, 1, 1, {s, s, s}, 0, -1}
#define POOL(n, src, k) {n, OP_POOL, src, NULL, 0, 0, k, 1, {k, k, k}, 0, -1}

static const layer_def LAYERS[] = {
    /* stem: 1 -> 16 @ 64x64x64, maxpool -> 16 @ 32^3 */
    {"stem", OP_CONV, NULL, NULL, 1, 16, 3, 1, {1, 2, 2}, 1, -1},
    POOL("stem.pool", "stem", 2),
    /* stage1: 3 blocks, 16 ch @ 32^3 */
    CONV("stage1.0.conv1", "stem.pool", 16, 16, 3, 1, 1),
    RESC("stage1.0.conv2", "stage1.0.conv1", "stem.pool", 16, 16),
    CONV("stage1.1.conv1", "stage1.0.conv2", 16, 16, 3, 1, 1),
    RESC("stage1.1.conv2", "stage1.1.conv1", "stage1.0.conv2", 16, 16),
    CONV("stage1.2.conv1", "stage1.1.conv2", 16, 16, 3, 1, 1),
    RESC("stage1.2.conv2", "stage1.2.conv1", "stage1.1.conv2", 16, 16),
    /* stage2: maxpool, 4 blocks, 32 ch @ 16^3 */
    POOL("stage2.pool", "stage1.2.conv2", 2),
    CONV("stage2.0.conv1", "stage2.pool", 16, 32, 3, 1, 1),
    PROJ("stage2.0.proj", "stage2.pool", 16, 32, 1),
    RESC("stage2.0.conv2", "stage2.0.conv1", "stage2.0.proj", 32, 32),
    CONV("stage2.1.conv1", "stage2.0.conv2", 32, 32, 3, 1, 1),
    RESC("stage2.1.conv2", "stage2.1.conv1", "stage2.0.conv2", 32, 32),
    CONV("stage2.2.conv1", "stage2.1.conv2", 32, 32, 3, 1, 1),
    RESC("stage2.2.conv2", "stage2.2.conv1", "stage2.1.conv2", 32, 32),
    CONV("stage2.3.conv1", "stage2.2.conv2", 32, 32, 3, 1, 1),
    RESC("stage2.3.conv2", "stage2.3.conv1", "stage2.2.conv2", 32, 32),
    /* stage3: maxpool, 6 blocks, 64 ch @ 8^3 */
    POOL("stage3.pool", "stage2.3.conv2", 2),
    CONV("stage3.0.conv1", "stage3.pool", 32, 64, 3, 1, 1),
    PROJ("stage3.0.proj", "stage3.pool", 32, 64, 1),
    RESC("stage3.0.conv2", "stage3.0.conv1", "stage3.0.proj", 64, 64),
    CONV("stage3.1.conv1", "stage3.0.conv2", 64, 64, 3, 1, 1),
    RESC("stage3.1.conv2", "stage3.1.conv1", "stage3.0.conv2", 64, 64),
    CONV("stage3.2.conv1", "stage3.1.conv2", 64, 64, 3, 1, 1),
    RESC("stage3.2.conv2", "stage3.2.conv1", "stage3.1.conv2", 64, 64),
    CONV("stage3.3.conv1", "stage3.2.conv2", 64, 64, 3, 1, 1),
    RESC("stage3.3.conv2", "stage3.3.conv1", "stage3.2.conv2", 64, 64),
    CONV("stage3.4.conv1", "stage3.3.conv2", 64, 64, 3, 1, 1),
    RESC("stage3.4.conv2", "stage3.4.conv1", "stage3.3.conv2", 64, 64),
    CONV("stage3.5.conv1", "stage3.4.conv2", 64, 64, 3, 1, 1),
    RESC("stage3.5.conv2", "stage3.5.conv1", "stage3.4.conv2", 64, 64),
    /* stage4: 3 blocks, 128 ch @ 4^3, first conv and projection stride 2 */
    CONV("stage4.0.conv1", "stage3.5.conv2", 64, 128, 3, 1, 2),
    PROJ("stage4.0.proj", "stage3.5.conv2", 64, 128, 2),
    RESC("stage4.0.conv2", "stage4.0.conv1", "stage4.0.proj", 128, 128),
    CONV("stage4.1.conv1", "stage4.0.conv2", 128, 128, 3, 1, 1),
    RESC("stage4.1.conv2", "stage4.1.conv1", "stage4.0.conv2", 128, 128),
    CONV("stage4.2.conv1", "stage4.1.conv2", 128, 128, 3, 1, 1),
    {"stage4.2.conv2", OP_CONV, "stage4.2.conv1", "stage4.1.conv2", 128, 128, 3, 1, {1, 1, 1}, 1, 0},
    /* subnet A (from stage1): d2, d3, pool 2, d2, pool 4, 1x1 -> 32 @ 4^3 */
    CONV("subA.conv1", "stage1.2.conv2", 16, 16, 3, 2, 1),
    CONV("subA.conv2", "subA.conv1", 16, 16, 3, 3, 1),
    POOL("subA.pool1", "subA.conv2", 2),
    CONV("subA.conv3", "subA.pool1", 16, 32, 3, 2, 1),
    POOL("subA.pool2", "subA.conv3", 4),
    {"subA.conv4", OP_CONV, "subA.pool2", NULL, 32, 32, 1, 1, {1, 1, 1}, 1, 128},
    /* subnet B (from stage2): d2, d3, pool 2, d2, pool 2, 1x1 -> 64 @ 4^3 */
    CONV("subB.conv1", "stage2.3.conv2", 32, 32, 3, 2, 1),
    CONV("subB.conv2", "subB.conv1", 32, 64, 3, 3, 1),
    POOL("subB.pool1", "subB.conv2", 2),
    CONV("subB.conv3", "subB.pool1", 64, 64, 3, 2, 1),
    POOL("subB.pool2", "subB.conv3", 2),
    {"subB.conv4", OP_CONV, "subB.pool2", NULL, 64, 64, 1, 1, {1, 1, 1}, 1, 160},
    /* subnet C (from stage3): d2, d2, d2, d1, pool 2, 1x1 -> 64 @ 4^3 */
    CONV("subC.conv1", "stage3.5.conv2", 64, 64, 3, 2, 1),
    CONV("subC.conv2", "subC.conv1", 64, 64, 3, 2, 1),
    CONV("subC.conv3", "subC.conv2", 64, 64, 3, 2, 1),
    CONV("subC.conv4", "subC.conv3", 64, 64, 3, 1, 1),
    POOL("subC.pool1", "subC.conv4", 2),
    {"subC.conv5", OP_CONV, "subC.pool1", NULL, 64, 64, 1, 1, {1, 1, 1}, 1, 224},
    /* lesion head (not part of the logit): 1x1x1 32 -> 1 on stage2's output, the ground-glass logit
     * per 16^3 cell that the crop training's lesion loss taught; the LESION heatmap is its sigmoid */
    PROJ("lesion", "stage2.3.conv2", 32, 1, 1),
};
enum { N_LAYERS = sizeof LAYERS / sizeof LAYERS[0] };

/* head: merge (288 @ 4^3) -> global average pool -> FC 288-128-64-1 -> sigmoid */
static const struct { const char *name; int nin, nout, relu; } FCS[] = {
    {"head.fc1", CSAC_N_FEATURES, 128, 1},
    {"head.fc2", 128, 64, 1},
    {"head.fc3", 64, 1, 0},
};
enum { N_FC = 3, MERGE_C = CSAC_N_FEATURES, MERGE_S = 4 };

/* Names csac_layer_output also answers to. */
static const struct { const char *alias, *name; } ALIASES[] = {
    {"stage1", "stage1.2.conv2"}, {"stage2", "stage2.3.conv2"}, {"stage3", "stage3.5.conv2"},
    {"stage4", "stage4.2.conv2"}, {"subA", "subA.conv4"},       {"subB", "subB.conv4"},
    {"subC", "subC.conv5"},
};

typedef struct layer {
    int src, res; /* row indices, -1 = model input / none */
    csac__conv conv;
    csac__shape in, out;
    float *y;     /* output, NCDHW */
} layer;

struct csac_model {
    void *mem;                 /* the one arena allocation          */
    layer l[N_LAYERS];
    float *input;              /* 1 x D x H x W                     */
    float *merge;              /* 288 x 4^3                         */
    float *feat;               /* 288, pooled merge                 */
    float *fc_w[N_FC], *fc_b[N_FC], *fc_y[N_FC];
    float *gather;             /* conv working memory               */
    csac__conv tconv[N_LAYERS];/* Grad-CAM: transposed, flipped convs of the subnet rows after a pool */
    float *g[2];               /* Grad-CAM: ping-pong gradient buffers */
    float *gfeat, *gfc;        /* Grad-CAM: d logit / d features, head scratch */
    float *cam;                /* the last heatmap at layer resolution */
    size_t arena_floats;
    int ran;                   /* a forward has completed            */
    char *info;
};

static const csac__shape INPUT_SHAPE = {1, CSAC_GRID_D, CSAC_GRID_H, CSAC_GRID_W};

/* ---- table helpers ---- */

static int find_row(const char *name) {
    for (int i = 0; i < N_LAYERS; i++)
        if (strcmp(LAYERS[i].name, name) == 0) return i;
    return -2;
}

static int conv_pad(const layer_def *d) { return d->dil * (d->k / 2); }

/* Subnet convs that come after one of their subnet's pools: Grad-CAM at a
 * subnet pool runs the data-gradient back through them. */
static int needs_backward(int i) {
    const layer_def *d = &LAYERS[i];
    if (d->op != OP_CONV || strncmp(d->name, "sub", 3) != 0) return 0;
    for (int j = 0; j < i; j++)
        if (LAYERS[j].op == OP_POOL && strncmp(LAYERS[j].name, d->name, 4) == 0) return 1;
    return 0;
}

int csac__model_n_tensors(void) {
    int n = 0;
    for (int i = 0; i < N_LAYERS; i++) n += LAYERS[i].op == OP_CONV ? 2 : 0;
    return n + 2 * N_FC;
}

int csac__model_tensor(int i, csac__tensor_spec *t) {
    memset(t, 0, sizeof *t);
    for (int r = 0; r < N_LAYERS; r++) {
        const layer_def *d = &LAYERS[r];
        if (d->op != OP_CONV) continue;
        if (i < 2) {
            snprintf(t->name, sizeof t->name, "%s.%s", d->name, i == 0 ? "weight" : "bias");
            t->shape[0] = d->cout;
            t->ndim = i == 0 ? 5 : 1;
            if (i == 0) { t->shape[1] = d->cin; t->shape[2] = t->shape[3] = t->shape[4] = d->k; }
            t->fan_in = d->cin * d->k * d->k * d->k;
            return r;
        }
        i -= 2;
    }
    if (i < 2 * N_FC) {
        int f = i / 2;
        snprintf(t->name, sizeof t->name, "%s.%s", FCS[f].name, i % 2 == 0 ? "weight" : "bias");
        t->ndim = i % 2 == 0 ? 2 : 1;
        t->shape[0] = FCS[f].nout;
        t->shape[1] = FCS[f].nin;
        t->fan_in = FCS[f].nin;
        return N_LAYERS + f;
    }
    return -1;
}

/* ---- deterministic random weights (mirrored in train/csacnet.py) ---- */

uint32_t csac__fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static uint32_t mix32(uint32_t x) { /* lowbias32 (C. Wellons) */
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

uint32_t csac__rand_u32(uint32_t seed, uint32_t i) { return mix32(mix32(seed) + i); }

float csac__rand_u01(uint32_t seed, uint32_t i) {
    return (float)(csac__rand_u32(seed, i) >> 8) * (1.0f / 16777216.0f);
}

/* Residual branches start small so activations stay O(1) through 16 blocks. */
static double rand_gain(const char *name) {
    size_t n = strlen(name);
    if (n > 13 && strcmp(name + n - 13, ".conv2.weight") == 0 && strncmp(name, "stage", 5) == 0) return 0.5;
    return 1.0;
}

void csac__rand_tensor(const csac__tensor_spec *t, uint32_t user_seed, float *dst) {
    uint32_t seed = csac__fnv1a(t->name) + user_seed * 0x9E3779B9u;
    long n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (long)t->shape[d];
    int is_w = t->ndim > 1;
    float scale = is_w ? (float)(rand_gain(t->name) * sqrt(6.0 / t->fan_in)) : 0.05f;
    for (long i = 0; i < n; i++) dst[i] = (2.0f * csac__rand_u01(seed, (uint32_t)i) - 1.0f) * scale;
}

void csac__rand_input(uint32_t user_seed, float *dst, long n) {
    uint32_t seed = csac__fnv1a("input") + user_seed * 0x9E3779B9u;
    for (long i = 0; i < n; i++) dst[i] = csac__rand_u01(seed, (uint32_t)i);
}

/* ---- arena planning ---- */

typedef struct { float *base; size_t used; } bump;

/* Every buffer is 64-byte aligned and followed by CSAC__SLACK readable floats. */
static float *take(bump *b, size_t n) {
    size_t at = b->used;
    b->used += (n + CSAC__SLACK + 15) / 16 * 16;
    return b->base ? b->base + at : NULL;
}

/* Resolves the table, computes shapes and assigns every buffer. With
 * b->base == NULL it only measures. Fails only on an inconsistent table. */
static int plan(csac_ctx *ctx, csac_model *m, bump *b, int nth) {
    size_t gather = 0;
    m->input = take(b, (size_t)CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W);
    m->merge = take(b, (size_t)MERGE_C * MERGE_S * MERGE_S * MERGE_S);
    for (int i = 0; i < N_LAYERS; i++) {
        const layer_def *d = &LAYERS[i];
        layer *l = &m->l[i];
        l->src = d->src ? find_row(d->src) : -1;
        l->res = d->res ? find_row(d->res) : -1;
        if (l->src < -1 || l->res < -1 || l->src >= i || l->res >= i)
            return csac__fail(ctx, CSAC_E_STATE, "layer table: '%s' reads a layer not computed before it", d->name);
        l->in = l->src < 0 ? INPUT_SHAPE : m->l[l->src].out;
        if (d->op == OP_POOL) {
            l->out = csac__maxpool_out_shape(d->k, l->in);
            l->y = take(b, (size_t)l->out.c * l->out.d * l->out.h * l->out.w);
            continue;
        }
        if (l->in.c != d->cin || d->k > CSAC__MAX_K)
            return csac__fail(ctx, CSAC_E_STATE, "layer table: '%s' takes %d channels, its input has %d", d->name,
                              d->cin, l->in.c);
        csac__conv *cv = &l->conv;
        cv->cin = d->cin;
        cv->cout = d->cout;
        cv->k = d->k;
        cv->dil = d->dil;
        cv->pad = conv_pad(d);
        memcpy(cv->stride, d->stride, sizeof cv->stride);
        cv->w = take(b, csac__conv_packed_floats(cv, l->in));
        cv->b = take(b, (size_t)d->cout);
        l->out = csac__conv_out_shape(cv, l->in);
        if (l->res >= 0) {
            csac__shape r = m->l[l->res].out;
            if (r.c != l->out.c || r.d != l->out.d || r.h != l->out.h || r.w != l->out.w)
                return csac__fail(ctx, CSAC_E_STATE, "layer table: residual of '%s' has another shape", d->name);
        }
        if (d->merge_c >= 0) {
            if (l->out.d != MERGE_S || l->out.h != MERGE_S || l->out.w != MERGE_S || d->merge_c + d->cout > MERGE_C)
                return csac__fail(ctx, CSAC_E_STATE, "layer table: '%s' does not fit the merge map", d->name);
            l->y = m->merge ? m->merge + (size_t)d->merge_c * MERGE_S * MERGE_S * MERGE_S : NULL;
        } else {
            l->y = take(b, (size_t)l->out.c * l->out.d * l->out.h * l->out.w);
        }
        size_t g = csac__conv_gather_floats(cv, l->in, nth);
        if (g > gather) gather = g;
        if (needs_backward(i)) {
            csac__conv *t = &m->tconv[i];
            *t = (csac__conv){d->cout, d->cin, d->k, d->dil, conv_pad(d), {1, 1, 1}, NULL, NULL, CSAC__CONV_AUTO};
            t->w = take(b, csac__conv_packed_floats(t, l->out));
            g = csac__conv_gather_floats(t, l->out, nth);
            if (g > gather) gather = g;
        }
    }
    size_t gmax = 0; /* the largest map on a Grad-CAM path */
    for (int i = 0; i < N_LAYERS; i++) {
        if (strncmp(LAYERS[i].name, "sub", 3) != 0) continue;
        size_t o = (size_t)m->l[i].out.c * m->l[i].out.d * m->l[i].out.h * m->l[i].out.w;
        size_t n = (size_t)m->l[i].in.c * m->l[i].in.d * m->l[i].in.h * m->l[i].in.w;
        if (o > gmax) gmax = o;
        if (n > gmax) gmax = n;
    }
    m->g[0] = take(b, gmax);
    m->g[1] = take(b, gmax);
    m->gfeat = take(b, MERGE_C);
    m->cam = take(b, CSAC__CAM_MAX);
    m->gfc = take(b, 2 * 128);
    for (int f = 0; f < N_FC; f++) {
        m->fc_w[f] = take(b, (size_t)FCS[f].nin * FCS[f].nout);
        m->fc_b[f] = take(b, (size_t)FCS[f].nout);
        m->fc_y[f] = take(b, (size_t)FCS[f].nout);
    }
    m->feat = take(b, MERGE_C);
    m->gather = take(b, gather);
    m->arena_floats = b->used;
    return CSAC_OK;
}

static int model_new(csac_ctx *ctx, csac_model **out) {
    *out = NULL;
    csac_model *m = calloc(1, sizeof *m);
    if (!m) return csac__fail(ctx, CSAC_E_NOMEM, "out of memory");
    bump b = {NULL, 0};
    int nth = csac_pool_size(ctx->pool), st = plan(ctx, m, &b, nth);
    if (st) { free(m); return st; }
    /* zeroed, so the tails that kernels read past a buffer are finite */
    m->mem = calloc(b.used + 16, sizeof(float));
    if (!m->mem) {
        free(m);
        return csac__fail(ctx, CSAC_E_NOMEM, "out of memory: the model needs %.0f MB", b.used * 4.0 / 1e6);
    }
    b.base = (float *)(((uintptr_t)m->mem + 63) & ~(uintptr_t)63);
    b.used = 0;
    plan(ctx, m, &b, nth);
    *out = m;
    return CSAC_OK;
}

void csac__model_free(csac_model *m) {
    if (!m) return;
    free(m->mem);
    free(m->info);
    free(m);
}

/* The data-gradient of a stride-1 'same' conv is the conv with in/out channels
 * swapped and the kernel flipped: pack that once at load. */
static int pack_transposed(csac_model *m, int row, const float *w) {
    const layer_def *d = &LAYERS[row];
    int kv = d->k * d->k * d->k;
    float *t = malloc(sizeof(float) * (size_t)d->cin * d->cout * kv);
    if (!t) return CSAC_E_NOMEM;
    for (int co = 0; co < d->cout; co++)
        for (int ci = 0; ci < d->cin; ci++)
            for (int q = 0; q < kv; q++)
                t[((size_t)ci * d->cout + co) * kv + (kv - 1 - q)] = w[((size_t)co * d->cin + ci) * kv + q];
    csac__conv_pack(&m->tconv[row], m->l[row].out, t, (float *)m->tconv[row].w);
    free(t);
    return CSAC_OK;
}

/* Puts one tensor (fp32, PyTorch layout) where the forward wants it. */
static int set_tensor(csac_model *m, int row, int is_bias, const float *v) {
    if (row >= N_LAYERS) {
        int f = row - N_LAYERS;
        memcpy(is_bias ? m->fc_b[f] : m->fc_w[f], v, sizeof(float) * (size_t)FCS[f].nout * (is_bias ? 1 : FCS[f].nin));
        return CSAC_OK;
    }
    const layer_def *d = &LAYERS[row];
    csac__conv *cv = &m->l[row].conv;
    if (is_bias) memcpy((float *)cv->b, v, sizeof(float) * (size_t)d->cout);
    else csac__conv_pack(cv, m->l[row].in, v, (float *)cv->w);
    if (!is_bias && m->tconv[row].w) return pack_transposed(m, row, v);
    return CSAC_OK;
}

static void install(csac_ctx *ctx, csac_model *m) {
    csac__model_free(ctx->model);
    ctx->model = m;
}

/* ---- loading ---- */

static void fmt_shape(char *o, size_t n, const int64_t *s, int nd) {
    size_t k = (size_t)snprintf(o, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(o + k, n - k, "%s%lld", i ? "," : "", (long long)s[i]);
    if (k < n) snprintf(o + k, n - k, "]");
}

/* The weights must be for this core's model grid (csac.h CSAC_GRID_VERSION). */
static int check_grid(csac_ctx *ctx, const csac__st_file *f) {
    if (!f->grid[0])
        return csac__fail(ctx, CSAC_E_WEIGHTS, "the weights name no model grid (__metadata__ \"grid\"): they predate "
                          "grid %d (weights v6 or older, or not written by train/export.py); use the weights that came "
                          "with this core", CSAC_GRID_VERSION);
    char *e;
    long g = strtol(f->grid, &e, 10);
    if (e == f->grid || *e || g != CSAC_GRID_VERSION)
        return csac__fail(ctx, CSAC_E_WEIGHTS, "the weights were trained on model grid '%s'; this core computes grid %d "
                          "(docs/preprocessing.md), so their probabilities would be wrong", f->grid, CSAC_GRID_VERSION);
    return CSAC_OK;
}

int csac_load_model_buffer(csac_ctx *ctx, const void *buf, size_t n) {
    if (!ctx) return CSAC_E_ARG;
    csac__clear_error(ctx);
    if (!buf && n) return csac__fail(ctx, CSAC_E_ARG, "csac_load_model_buffer: NULL buffer");
    csac__st_file f;
    int st = csac__st_parse(ctx, buf, n, &f);
    if (st) return st;
    int nt = csac__model_n_tensors();
    int *found = calloc((size_t)nt, sizeof *found);
    csac_model *m = NULL;
    float *tmp = NULL;
    if (!found) { st = csac__fail(ctx, CSAC_E_NOMEM, "out of memory"); goto done; }
    /* every tensor in the file must be one we expect, with its shape and a dtype we read */
    for (int i = 0; i < f.n && !st; i++) {
        const csac__st_tensor *t = &f.t[i];
        csac__tensor_spec sp;
        int k = 0;
        for (; k < nt; k++) {
            csac__model_tensor(k, &sp);
            if (strcmp(sp.name, t->name) == 0) break;
        }
        if (k == nt) { st = csac__fail(ctx, CSAC_E_WEIGHTS, "unexpected tensor '%s': not in the CSAC-Net-3D v1 layer table", t->name); break; }
        found[k] = i + 1;
        if (t->dtype == CSAC__DT_OTHER) {
            st = csac__fail(ctx, CSAC_E_UNSUPPORTED, "tensor '%s': dtype %s is not supported (F32 or F16)", t->name, t->dtype_name);
            break;
        }
        int same = t->ndim == sp.ndim;
        for (int d = 0; same && d < sp.ndim; d++) same = t->shape[d] == sp.shape[d];
        if (!same) {
            char want[96], have[96];
            fmt_shape(want, sizeof want, sp.shape, sp.ndim);
            fmt_shape(have, sizeof have, t->shape, t->ndim);
            st = csac__fail(ctx, CSAC_E_WEIGHTS, "tensor '%s': shape %s expected, file has %s", t->name, want, have);
        }
    }
    for (int k = 0; k < nt && !st; k++)
        if (!found[k]) {
            csac__tensor_spec sp;
            char want[96];
            csac__model_tensor(k, &sp);
            fmt_shape(want, sizeof want, sp.shape, sp.ndim);
            st = csac__fail(ctx, CSAC_E_WEIGHTS, "missing tensor '%s' (shape %s); the file has %d of %d tensors", sp.name, want, f.n, nt);
        }
    if (!st) st = check_grid(ctx, &f);
    if (st) goto done;
    if ((st = model_new(ctx, &m)) != CSAC_OK) goto done;
    tmp = malloc(sizeof(float) * 128 * 128 * 27);
    if (!tmp) { st = csac__fail(ctx, CSAC_E_NOMEM, "out of memory"); goto done; }
    long nparam = 0;
    int n16 = 0;
    for (int k = 0; k < nt && !st; k++) {
        csac__tensor_spec sp;
        int row = csac__model_tensor(k, &sp);
        const csac__st_tensor *t = &f.t[found[k] - 1];
        long ne = (long)((t->end - t->begin) / (t->dtype == CSAC__DT_F32 ? 4 : 2));
        csac__st_to_f32(&f, t, tmp);
        for (long i = 0; i < ne; i++)
            if (!isfinite(tmp[i])) { st = csac__fail(ctx, CSAC_E_DATA, "tensor '%s' has a non-finite value at %ld", t->name, i); break; }
        if (set_tensor(m, row, sp.ndim == 1, tmp)) { st = csac__fail(ctx, CSAC_E_NOMEM, "out of memory"); break; }
        nparam += ne;
        n16 += t->dtype == CSAC__DT_F16;
    }
    if (st) goto done;
    char summary[160];
    snprintf(summary, sizeof summary, "CSAC-Net-3D v1: %d tensors, %ld parameters, %s", nt, nparam,
             n16 == nt ? "F16" : n16 ? "F32+F16" : "F32");
    size_t ilen = strlen(summary) + (f.metadata ? strlen(f.metadata) + 3 : 0) + 1;
    m->info = malloc(ilen);
    if (!m->info) { st = csac__fail(ctx, CSAC_E_NOMEM, "out of memory"); goto done; }
    if (f.metadata && f.metadata[0]) snprintf(m->info, ilen, "%s; %s", f.metadata, summary);
    else snprintf(m->info, ilen, "%s", summary);
    install(ctx, m);
    m = NULL;
done:
    csac__model_free(m);
    free(tmp);
    free(found);
    csac__st_free(&f);
    return st;
}

int csac_load_model_file(csac_ctx *ctx, const char *path) {
    if (!ctx) return CSAC_E_ARG;
    if (!path) return csac__fail(ctx, CSAC_E_ARG, "csac_load_model_file: NULL path");
    FILE *fp = fopen(path, "rb");
    if (!fp) return csac__fail(ctx, CSAC_E_IO, "cannot open weights '%s'", path);
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return csac__fail(ctx, CSAC_E_IO, "cannot read weights '%s'", path);
    }
    if ((uint64_t)n > ctx->params.max_file_bytes) {
        fclose(fp);
        return csac__fail(ctx, CSAC_E_LIMIT, "weights '%s' is %ld bytes, over the %llu-byte limit", path, n,
                          (unsigned long long)ctx->params.max_file_bytes);
    }
    void *buf = malloc(n ? (size_t)n : 1);
    if (!buf) { fclose(fp); return csac__fail(ctx, CSAC_E_NOMEM, "out of memory reading '%s'", path); }
    size_t got = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    if (got != (size_t)n) { free(buf); return csac__fail(ctx, CSAC_E_IO, "cannot read weights '%s'", path); }
    int st = csac_load_model_buffer(ctx, buf, (size_t)n);
    free(buf);
    if (st) {
        char msg[sizeof ctx->err];
        snprintf(msg, sizeof msg, "%s", ctx->err);
        csac__fail(ctx, st, "%s: %s", path, msg);
    }
    return st;
}

int csac_model_init_random(csac_ctx *ctx, uint32_t seed) {
    if (!ctx) return CSAC_E_ARG;
    csac__clear_error(ctx);
    csac_model *m;
    int st = model_new(ctx, &m);
    if (st) return st;
    float *tmp = malloc(sizeof(float) * 128 * 128 * 27);
    if (!tmp) { csac__model_free(m); return csac__fail(ctx, CSAC_E_NOMEM, "out of memory"); }
    for (int k = 0; k < csac__model_n_tensors(); k++) {
        csac__tensor_spec sp;
        int row = csac__model_tensor(k, &sp);
        csac__rand_tensor(&sp, seed, tmp);
        if (set_tensor(m, row, sp.ndim == 1, tmp)) {
            free(tmp);
            csac__model_free(m);
            return csac__fail(ctx, CSAC_E_NOMEM, "out of memory");
        }
    }
    free(tmp);
    csac__rand_input(seed, m->input, (long)CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W);
    char info[96];
    snprintf(info, sizeof info, "CSAC-Net-3D v1: random weights, seed %u", (unsigned)seed);
    m->info = malloc(strlen(info) + 1);
    if (m->info) strcpy(m->info, info);
    install(ctx, m);
    return CSAC_OK;
}

const char *csac_model_info(const csac_ctx *ctx) {
    return ctx && ctx->model && ctx->model->info ? ctx->model->info : "";
}

float *csac_model_input(csac_ctx *ctx) { return ctx && ctx->model ? ctx->model->input : NULL; }

/* ---- forward: one step per table row, then the head ---- */

static void forward_conv(csac_ctx *ctx, layer *l, const layer_def *d) {
    csac_model *m = ctx->model;
    const float *x = l->src < 0 ? m->input : m->l[l->src].y;
    const float *res = l->res < 0 ? NULL : m->l[l->res].y;
    csac__conv3d(ctx->pool, &l->conv, x, l->in, l->y, res, d->relu, m->gather);
}

static void forward_pool(csac_ctx *ctx, layer *l, const layer_def *d) {
    csac_model *m = ctx->model;
    const float *x = l->src < 0 ? m->input : m->l[l->src].y;
    csac__maxpool3d(ctx->pool, d->k, x, l->in, l->y);
}

static float forward_head(csac_model *m) {
    csac__shape ms = {MERGE_C, MERGE_S, MERGE_S, MERGE_S};
    csac__avgpool_global(m->merge, ms, m->feat);
    const float *x = m->feat;
    for (int f = 0; f < N_FC; f++) {
        csac__linear(m->fc_w[f], m->fc_b[f], FCS[f].nin, FCS[f].nout, x, m->fc_y[f], FCS[f].relu);
        x = m->fc_y[f];
    }
    return x[0];
}

int csac_forward(csac_ctx *ctx, csac_result *res) {
    if (!ctx || !res) return csac__fail(ctx, CSAC_E_ARG, "csac_forward: NULL argument");
    csac_model *m = ctx->model;
    if (!m) return csac__fail(ctx, CSAC_E_STATE, "no model loaded: load weights before forward");
    double t0 = csac__now_ms();
    m->ran = 0;
    for (int i = 0; i < N_LAYERS; i++) {
#ifdef CSAC_PROFILE /* dev builds: per-layer times on stderr */
        double tl = csac__now_ms();
#endif
        if (LAYERS[i].op == OP_CONV) forward_conv(ctx, &m->l[i], &LAYERS[i]);
        else forward_pool(ctx, &m->l[i], &LAYERS[i]);
#ifdef CSAC_PROFILE
        tl = csac__now_ms() - tl;
        double gf = LAYERS[i].op == OP_CONV ? csac__conv_macs(&m->l[i].conv, m->l[i].in, 1) * 2e-9 : 0;
        double busy[CSAC__MAX_THREADS];
        csac_pool_take_busy(ctx->pool, busy);
        fprintf(stderr, "%-16s %7.2f ms %6.1f GFLOP/s busy", LAYERS[i].name, tl, gf / (tl * 1e-3));
        for (int t = 0; t < csac_pool_size(ctx->pool); t++) fprintf(stderr, " %.2f", busy[t]);
        fprintf(stderr, "\n");
#endif
    }
    float logit = forward_head(m);
    memset(res, 0, sizeof *res);
    res->logit = logit;
    res->probability = csac__sigmoid(logit);
    memcpy(res->features, m->feat, sizeof res->features);
    res->ms_forward = csac__now_ms() - t0;
    m->ran = 1;
    if (!isfinite(logit)) return csac__fail(ctx, CSAC_E_DATA, "forward produced a non-finite logit (input out of range?)");
    return CSAC_OK;
}

const float *csac_layer_output(const csac_ctx *ctx, const char *name, int shape[4]) {
    if (!ctx || !ctx->model || !ctx->model->ran || !name) return NULL;
    const csac_model *m = ctx->model;
    const float *p = NULL;
    csac__shape s = {0, 0, 0, 0};
    for (size_t a = 0; a < sizeof ALIASES / sizeof ALIASES[0]; a++)
        if (strcmp(name, ALIASES[a].alias) == 0) name = ALIASES[a].name;
    if (strcmp(name, "input") == 0) {
        p = m->input;
        s = INPUT_SHAPE;
    } else if (strcmp(name, "merge") == 0) {
        p = m->merge;
        s = (csac__shape){MERGE_C, MERGE_S, MERGE_S, MERGE_S};
    } else {
        int r = find_row(name);
        if (r < 0) { /* "stageN.b" names a block: its output is conv2's */
            char blk[64];
            snprintf(blk, sizeof blk, "%s.conv2", name);
            r = strncmp(name, "stage", 5) == 0 ? find_row(blk) : -1;
        }
        if (r < 0) return NULL;
        p = m->l[r].y;
        s = m->l[r].out;
    }
    if (shape) { shape[0] = s.c; shape[1] = s.d; shape[2] = s.h; shape[3] = s.w; }
    return p;
}

double csac__model_flops(int dense) {
    double macs = 0;
    csac__shape sh[N_LAYERS];
    for (int i = 0; i < N_LAYERS; i++) {
        const layer_def *d = &LAYERS[i];
        int src = d->src ? find_row(d->src) : -1;
        csac__shape in = src < 0 ? INPUT_SHAPE : sh[src];
        if (d->op == OP_POOL) { sh[i] = csac__maxpool_out_shape(d->k, in); continue; }
        csac__conv cv = {d->cin, d->cout, d->k, d->dil, conv_pad(d), {d->stride[0], d->stride[1], d->stride[2]}, NULL, NULL, CSAC__CONV_AUTO};
        sh[i] = csac__conv_out_shape(&cv, in);
        macs += csac__conv_macs(&cv, in, dense);
    }
    for (int f = 0; f < N_FC; f++) macs += (double)FCS[f].nin * FCS[f].nout;
    return 2 * macs;
}

double csac_model_flops(int dense) { return csac__model_flops(dense); }

/* ---- heatmaps: Grad-CAM (and plain activation) at a layer of the last forward ---- */

/* d logit / d features (the pooled merge) through the FC head. */
static void head_backward(csac_model *m) {
    float *g2 = m->gfc, *g1 = m->gfc + 128; /* d/d fc2 output (64), d/d fc1 output (128) */
    for (int j = 0; j < 64; j++) g2[j] = m->fc_y[1][j] > 0 ? m->fc_w[2][j] : 0.0f;
    for (int i = 0; i < 128; i++) {
        float s = 0;
        for (int j = 0; j < 64; j++) s += m->fc_w[1][(size_t)j * 128 + i] * g2[j];
        g1[i] = m->fc_y[0][i] > 0 ? s : 0.0f;
    }
    for (int c = 0; c < MERGE_C; c++) {
        float s = 0;
        for (int i = 0; i < 128; i++) s += m->fc_w[0][(size_t)i * MERGE_C + c] * g1[i];
        m->gfeat[c] = s;
    }
}

/* Routes each pooled cell's gradient to the first maximum of its window
 * (PyTorch's choice for ties). */
static void pool_backward(int k, const float *x, csac__shape in, csac__shape out, const float *gy, float *gx) {
    memset(gx, 0, sizeof(float) * (size_t)in.c * in.d * in.h * in.w);
    for (int c = 0; c < out.c; c++)
        for (int od = 0; od < out.d; od++)
            for (int oh = 0; oh < out.h; oh++)
                for (int ow = 0; ow < out.w; ow++) {
                    size_t best = 0;
                    float bv = -INFINITY;
                    for (int a = 0; a < k; a++)
                        for (int bb = 0; bb < k; bb++)
                            for (int e = 0; e < k; e++) {
                                size_t at = (((size_t)c * in.d + od * k + a) * in.h + oh * k + bb) * in.w + ow * k + e;
                                if (x[at] > bv) { bv = x[at]; best = at; }
                            }
                    gx[best] += gy[(((size_t)c * out.d + od) * out.h + oh) * out.w + ow];
                }
}

/* Maps cell o of a row's output to input-grid coordinates a*o + b per axis
 * (d, h, w): each row reads input index stride*o + centre of its window. */
static void row_axes(const csac_model *m, int row, double a[3], double b[3]) {
    for (int x = 0; x < 3; x++) { a[x] = 1; b[x] = 0; }
    for (int r = row; r >= 0; r = m->l[r].src) {
        const layer_def *d = &LAYERS[r];
        for (int x = 0; x < 3; x++) {
            double c = d->op == OP_POOL ? (d->k - 1) / 2.0 : (d->k - 1) / 2.0 * d->dil - conv_pad(d);
            a[x] *= d->stride[x];
            b[x] = d->stride[x] * b[x] + c;
        }
    }
}

const float *csac__model_cam(csac_ctx *ctx, const char *lname, int mode, int dims[3], double a[3], double b[3],
                             int *status) {
    csac_model *m = ctx->model;
    *status = CSAC_E_STATE;
    if (!m) { csac__fail(ctx, CSAC_E_STATE, "heatmap: no model loaded"); return NULL; }
    if (!m->ran) { csac__fail(ctx, CSAC_E_STATE, "heatmap: run the network first"); return NULL; }
    *status = CSAC_E_ARG;
    if (mode == CSAC_HEATMAP_LESION || strcmp(lname, "lesion") == 0) {
        if (mode != CSAC_HEATMAP_LESION || strcmp(lname, "lesion") != 0) {
            csac__fail(ctx, CSAC_E_ARG, "heatmap: the LESION mode goes with the layer 'lesion' only (got '%s', mode %d)",
                       lname, mode);
            return NULL;
        }
        int r = find_row("lesion");
        const layer *l = &m->l[r];
        size_t n = (size_t)l->out.d * l->out.h * l->out.w;
        dims[0] = l->out.d; dims[1] = l->out.h; dims[2] = l->out.w;
        row_axes(m, r, a, b);
        for (size_t x = 0; x < n; x++) m->cam[x] = (float)(1.0 / (1.0 + exp(-(double)l->y[x])));
        *status = CSAC_OK;
        return m->cam;
    }
    int is_merge = strcmp(lname, "merge") == 0;
    int L = is_merge ? find_row("stage4.2.conv2") : find_row(lname);
    if (L < 0 || (!is_merge && LAYERS[L].op != OP_POOL)) {
        csac__fail(ctx, CSAC_E_ARG, "heatmap: '%s' is not a max-pool layer or 'merge'", lname);
        return NULL;
    }
    csac__shape s = is_merge ? (csac__shape){MERGE_C, MERGE_S, MERGE_S, MERGE_S} : m->l[L].out;
    const float *A = is_merge ? m->merge : m->l[L].y;
    size_t nsp = (size_t)s.d * s.h * s.w;
    if (nsp > CSAC__CAM_MAX) { csac__fail(ctx, CSAC_E_ARG, "heatmap: layer '%s' is too large", lname); return NULL; }
    dims[0] = s.d; dims[1] = s.h; dims[2] = s.w;
    row_axes(m, L, a, b);
    const float *w = NULL; /* channel weights (Grad-CAM) */
    if (mode == CSAC_HEATMAP_GRADCAM) {
        head_backward(m);
        if (is_merge) {
            w = m->gfeat; /* d logit / d merge[c, x] = gfeat[c] / 64: the mean over x */
        } else {
            if (strncmp(LAYERS[L].name, "sub", 3) != 0) {
                csac__fail(ctx, CSAC_E_ARG, "heatmap: Grad-CAM in the C core is offered at the subnet pools and 'merge' "
                           "(a baseline pool would need a backward pass through the residual trunk); '%s' is not one", lname);
                return NULL;
            }
            /* The path from this pool to the merge map: follow src links back from the subnet's merge row. */
            int end = -1, chain[N_LAYERS], n = 0;
            for (int i = 0; i < N_LAYERS; i++)
                if (LAYERS[i].merge_c >= 0 && strncmp(LAYERS[i].name, LAYERS[L].name, 4) == 0) end = i;
            for (int r = end; r > L && r >= 0; r = m->l[r].src) chain[n++] = r;
            float *g = m->g[0], *o = m->g[1];
            const layer *e = &m->l[end];
            size_t esp = (size_t)e->out.d * e->out.h * e->out.w;
            for (int c = 0; c < e->out.c; c++)
                for (size_t x = 0; x < esp; x++) g[c * esp + x] = m->gfeat[LAYERS[end].merge_c + c] / (float)esp;
            for (int q = 0; q < n; q++) {
                int r = chain[q];
                const layer *l = &m->l[r];
                size_t no = (size_t)l->out.c * l->out.d * l->out.h * l->out.w;
                if (LAYERS[r].op == OP_CONV) {
                    if (LAYERS[r].relu)
                        for (size_t x = 0; x < no; x++) g[x] = l->y[x] > 0 ? g[x] : 0.0f;
                    csac__conv3d(ctx->pool, &m->tconv[r], g, l->out, o, NULL, 0, m->gather);
                } else {
                    pool_backward(LAYERS[r].k, m->l[l->src].y, l->in, l->out, g, o);
                }
                float *t = g; g = o; o = t;
            }
            /* g = d logit / d A; Grad-CAM weight = its spatial mean per channel */
            for (int c = 0; c < s.c; c++) {
                double acc = 0;
                for (size_t x = 0; x < nsp; x++) acc += g[c * nsp + x];
                o[c] = (float)(acc / nsp);
            }
            w = o;
        }
    }
    for (size_t x = 0; x < nsp; x++) {
        double v = 0;
        for (int c = 0; c < s.c; c++) v += (w ? w[c] : 1.0f / s.c) * A[c * nsp + x];
        m->cam[x] = v > 0 ? (float)v : 0.0f;
    }
    *status = CSAC_OK;
    return m->cam;
}
