/* Fast native rendering for train/synth (compiled on first use by render.py into build/synth/;
 * render.py falls back to numpy when no C compiler is present, with identical results).
 * One pass per output voxel: bilinear 2x upsampling of an internal slice (0.75/0.25 weights,
 * edge clamped, rows first as in render._up2), correlated noise from the noise bank (512x512
 * window of a doubled 1024x1024 tile), the reconstruction circle, and the stored type
 * (int16 after subtracting the intercept, rounded half-to-even, or float32). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

static inline void put(void *out, size_t o, float v, int out_int16, float inter)
{
    if (out_int16)
        ((int16_t *)out)[o] = (int16_t)lrintf(v - inter);
    else
        ((float *)out)[o] = v;
}

void synth_up2_noise(const float *in, int zc, int h, int w, const float *bank,
                     const int32_t *ti, const int32_t *oy, const int32_t *ox, float sigma,
                     float pad, float inter, int out_int16, void *out)
{
    const int h2 = 2 * h, w2 = 2 * w;
    const double cy = (h2 - 1) * 0.5, cx = (w2 - 1) * 0.5, r2 = (double)(h2 / 2) * (h2 / 2);
    for (int z = 0; z < zc; z++) {
        const float *a = in + (size_t)z * h * w;
        const float *nb = bank + (size_t)ti[z] * 1024 * 1024;
        for (int y2 = 0; y2 < h2; y2++) {
            int i = y2 >> 1;
            int j = (y2 & 1) ? (i + 1 < h ? i + 1 : h - 1) : (i > 0 ? i - 1 : 0);
            const float *ra = a + (size_t)i * w, *rb = a + (size_t)j * w;
            const float *nrow = nb + (size_t)(oy[z] + y2) * 1024 + ox[z];
            size_t o = ((size_t)z * h2 + y2) * w2;
            /* inside the circle: dx^2 <= r2 - dy^2 */
            double dy = y2 - cy, rem = r2 - dy * dy;
            int xa = w2, xb = w2;
            if (rem >= 0) {
                double s = sqrt(rem);
                xa = (int)ceil(cx - s);
                xb = (int)floor(cx + s) + 1;
                if (xa < 0) xa = 0;
                if (xb > w2) xb = w2;
                /* exact test at the borders (same comparison as numpy) */
                while (xa < xb && (xa - cx) * (xa - cx) + dy * dy > r2) xa++;
                while (xb > xa && (xb - 1 - cx) * (xb - 1 - cx) + dy * dy > r2) xb--;
                if (xa > 0 && (xa - 1 - cx) * (xa - 1 - cx) + dy * dy <= r2) xa--;
                if (xb < w2 && (xb - cx) * (xb - cx) + dy * dy <= r2) xb++;
            }
            for (int x2 = 0; x2 < (xa < xb ? xa : w2); x2++) put(out, o + x2, pad, out_int16, inter);
            if (xa >= xb) continue;
            for (int x2 = xb; x2 < w2; x2++) put(out, o + x2, pad, out_int16, inter);
            for (int x2 = xa; x2 < xb; x2++) {
                int k = x2 >> 1;
                int l = (x2 & 1) ? (k + 1 < w ? k + 1 : w - 1) : (k > 0 ? k - 1 : 0);
                float ta = 0.75f * ra[k] + 0.25f * ra[l];
                float tb = 0.75f * rb[k] + 0.25f * rb[l];
                float v = 0.75f * ta + 0.25f * tb + sigma * nrow[x2];
                put(out, o + x2, v, out_int16, inter);
            }
        }
    }
}

/* nearest-neighbour 2x in-plane upsampling of a uint8 label stack */
void synth_up2_label(const uint8_t *in, int zc, int h, int w, uint8_t *out)
{
    const int w2 = 2 * w;
    for (int z = 0; z < zc; z++)
        for (int i = 0; i < h; i++) {
            const uint8_t *r = in + ((size_t)z * h + i) * w;
            uint8_t *o0 = out + ((size_t)z * 2 * h + 2 * i) * w2;
            uint8_t *o1 = o0 + w2;
            for (int k = 0; k < w; k++) {
                o0[2 * k] = o0[2 * k + 1] = r[k];
                o1[2 * k] = o1[2 * k + 1] = r[k];
            }
        }
}
