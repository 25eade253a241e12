/*
 * model.h - the CSAC-Net-3D layer table and the deterministic random weights
 * (internal; tests include it). train/csacnet.py mirrors both.
 */
#ifndef CSAC_MODEL_H
#define CSAC_MODEL_H

#include <stdint.h>

#include "csac_internal.h"

/* One weight tensor the model expects: "<layer>.weight" or "<layer>.bias". */
typedef struct csac__tensor_spec {
    char name[64];
    int ndim;
    int64_t shape[5];
    int fan_in; /* cin * k^3 (conv) or nin (fc): scales the random init */
} csac__tensor_spec;

/* The expected tensors, in layer-table order: every conv row's weight and
 * bias, then the head's. Fills *t; returns >= 0, or -1 past the end. */
int csac__model_n_tensors(void);
int csac__model_tensor(int i, csac__tensor_spec *t);

/* Deterministic weights and input shared with train/csacnet.py:
 *   h(seed, i) = mix(mix(seed) + i), mix = lowbias32 (all uint32 arithmetic)
 *   u = (h >> 8) * 2^-24 in [0, 1)
 *   weight[i] = (2u - 1) * (float)(gain * sqrt(6 / fan_in)) with
 *   seed = fnv1a(name) + user_seed * 0x9E3779B9, gain from csac__rand_gain;
 *   bias[i] = (2u - 1) * 0.05f; input[i] = u with seed fnv1a("input") + ... */
uint32_t csac__fnv1a(const char *s);
uint32_t csac__rand_u32(uint32_t seed, uint32_t i);
float csac__rand_u01(uint32_t seed, uint32_t i);
void csac__rand_tensor(const csac__tensor_spec *t, uint32_t user_seed, float *dst);
void csac__rand_input(uint32_t user_seed, float *dst, long n);

/* Dense multiply-adds of one forward (every conv tap counted) x 2 = FLOPs. */
double csac__model_flops(int dense);

/* Heatmap of the last forward at a max-pool layer (or "merge"), at the
 * layer's resolution: Grad-CAM (ReLU of the gradient-weighted channel sum) or
 * the plain channel-mean activation. dims = (d, h, w) cells; cell o lies at
 * model-input coordinate a*o + b per axis. Points into the model (valid until
 * the next forward); NULL with *status and the context's error set on failure. */
#define CSAC__CAM_MAX 4096
const float *csac__model_cam(csac_ctx *ctx, const char *layer, int mode, int dims[3], double a[3], double b[3],
                             int *status);

#endif
