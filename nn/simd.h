/*
 * simd.h - the one SIMD mapping of the C core. Kernels are written once
 * against these names; each target gets one branch here.
 *
 *   csac_vf              vector of CSAC_VLEN floats
 *   csac_vload/vstore    unaligned load/store
 *   csac_vset1/vzero     broadcast / zero
 *   csac_vadd/vsub/vmul/vmax  lane-wise
 *   csac_vmadd(a, b, c)  a + b*c (fused on AVX-512/AVX2/NEON; mul then add on wasm,
 *                        since relaxed-SIMD FMA does not work with our toolchain)
 *   CSAC_SIMD_FMA        1 where csac_vmadd is one fused instruction
 *   csac_vhsum           horizontal sum
 *   csac_vmax_pairs(a,b) max of adjacent lanes of a then b:
 *                        {max(a0,a1), max(a2,a3), ..., max(b0,b1), ...}
 *                        (the even lane on ties, like csac_vmax(even, odd))
 *   csac_vzip_lo/hi(a,b) interleave: lo = {a0,b0,a1,b1,...} (first halves),
 *                        hi = the same for the second halves
 *   csac_vunzip_even(a,b) the even lanes of a then b: {a0,a2,...,b0,b2,...}
 *
 * Fused and unfused multiply-add differ in the last bit, so native and wasm
 * agree within a tolerance, not bitwise; a given build is deterministic.
 */
#ifndef CSAC_SIMD_H
#define CSAC_SIMD_H

#if defined(__AVX512F__) && !defined(CSAC_NO_AVX512)
/* 16 lanes and 32 registers: twice the work per instruction of AVX2. */
#include <immintrin.h>
#define CSAC_SIMD_NAME "avx512f"
#define CSAC_SIMD_FMA 1
#define CSAC_VLEN 16
typedef __m512 csac_vf;
#define csac_vload(p) _mm512_loadu_ps(p)
#define csac_vstore(p, v) _mm512_storeu_ps((p), (v))
#define csac_vset1(x) _mm512_set1_ps(x)
#define csac_vzero() _mm512_setzero_ps()
#define csac_vadd(a, b) _mm512_add_ps((a), (b))
#define csac_vsub(a, b) _mm512_sub_ps((a), (b))
#define csac_vmul(a, b) _mm512_mul_ps((a), (b))
#define csac_vmax(a, b) _mm512_max_ps((a), (b))
#define csac_vmadd(a, b, c) _mm512_fmadd_ps((b), (c), (a))
static inline csac_vf csac_vmax_pairs(csac_vf a, csac_vf b) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_max_ps(_mm512_permutex2var_ps(a, od, b), _mm512_permutex2var_ps(a, ev, b));
}
static inline csac_vf csac_vunzip_even(csac_vf a, csac_vf b) {
    return _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b);
}
static inline csac_vf csac_vzip_lo(csac_vf a, csac_vf b) {
    return _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), b);
}
static inline csac_vf csac_vzip_hi(csac_vf a, csac_vf b) {
    return _mm512_permutex2var_ps(a, _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), b);
}
static inline float csac_vhsum(csac_vf v) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define CSAC_SIMD_NAME "avx2+fma"
#define CSAC_SIMD_FMA 1
#define CSAC_VLEN 8
typedef __m256 csac_vf;
#define csac_vload(p) _mm256_loadu_ps(p)
#define csac_vstore(p, v) _mm256_storeu_ps((p), (v))
#define csac_vset1(x) _mm256_set1_ps(x)
#define csac_vzero() _mm256_setzero_ps()
#define csac_vadd(a, b) _mm256_add_ps((a), (b))
#define csac_vsub(a, b) _mm256_sub_ps((a), (b))
#define csac_vmul(a, b) _mm256_mul_ps((a), (b))
#define csac_vmax(a, b) _mm256_max_ps((a), (b))
#define csac_vmadd(a, b, c) _mm256_fmadd_ps((b), (c), (a))
static inline csac_vf csac_vmax_pairs(csac_vf a, csac_vf b) { /* shuffles stay in 128-bit lanes: reorder after */
    __m256 m = _mm256_max_ps(_mm256_shuffle_ps(a, b, 0xDD), _mm256_shuffle_ps(a, b, 0x88));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), 0xD8));
}
#define csac_vunzip_even(a, b) \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps((a), (b), 0x88)), 0xD8))
/* unpack interleaves within 128-bit lanes: regroup the lanes after */
#define csac_vzip_lo(a, b) _mm256_permute2f128_ps(_mm256_unpacklo_ps((a), (b)), _mm256_unpackhi_ps((a), (b)), 0x20)
#define csac_vzip_hi(a, b) _mm256_permute2f128_ps(_mm256_unpacklo_ps((a), (b)), _mm256_unpackhi_ps((a), (b)), 0x31)
static inline float csac_vhsum(csac_vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

#elif defined(__wasm_simd128__)
#include <wasm_simd128.h>
#define CSAC_SIMD_NAME "wasm-simd128"
#define CSAC_SIMD_FMA 0
#define CSAC_VLEN 4
typedef v128_t csac_vf;
#define csac_vload(p) wasm_v128_load(p)
#define csac_vstore(p, v) wasm_v128_store((p), (v))
#define csac_vset1(x) wasm_f32x4_splat(x)
#define csac_vzero() wasm_f32x4_splat(0.0f)
#define csac_vadd(a, b) wasm_f32x4_add((a), (b))
#define csac_vsub(a, b) wasm_f32x4_sub((a), (b))
#define csac_vmul(a, b) wasm_f32x4_mul((a), (b))
/* pmax: plain compare-select, one instruction on x86 hosts (unlike f32x4.max). */
#define csac_vmax(a, b) wasm_f32x4_pmax((a), (b))
#define csac_vmadd(a, b, c) wasm_f32x4_add((a), wasm_f32x4_mul((b), (c)))
#define csac_vmax_pairs(a, b) \
    wasm_f32x4_pmax(wasm_i32x4_shuffle((a), (b), 0, 2, 4, 6), wasm_i32x4_shuffle((a), (b), 1, 3, 5, 7))
#define csac_vunzip_even(a, b) wasm_i32x4_shuffle((a), (b), 0, 2, 4, 6)
#define csac_vzip_lo(a, b) wasm_i32x4_shuffle((a), (b), 0, 4, 1, 5)
#define csac_vzip_hi(a, b) wasm_i32x4_shuffle((a), (b), 2, 6, 3, 7)
static inline float csac_vhsum(csac_vf v) {
    return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
           (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

#elif defined(__ARM_NEON)
#include <arm_neon.h>
#define CSAC_SIMD_NAME "neon"
#define CSAC_SIMD_FMA 1
#define CSAC_VLEN 4
typedef float32x4_t csac_vf;
#define csac_vload(p) vld1q_f32(p)
#define csac_vstore(p, v) vst1q_f32((p), (v))
#define csac_vset1(x) vdupq_n_f32(x)
#define csac_vzero() vdupq_n_f32(0.0f)
#define csac_vadd(a, b) vaddq_f32((a), (b))
#define csac_vsub(a, b) vsubq_f32((a), (b))
#define csac_vmul(a, b) vmulq_f32((a), (b))
#define csac_vmax(a, b) vmaxq_f32((a), (b))
#define csac_vmadd(a, b, c) vfmaq_f32((a), (b), (c))
#define csac_vmax_pairs(a, b) vpmaxq_f32((a), (b))
#define csac_vunzip_even(a, b) vuzp1q_f32((a), (b))
#define csac_vzip_lo(a, b) vzip1q_f32((a), (b))
#define csac_vzip_hi(a, b) vzip2q_f32((a), (b))
static inline float csac_vhsum(csac_vf v) {
    float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
}

#elif defined(__SSE2__)
#include <emmintrin.h>
#define CSAC_SIMD_NAME "sse2"
#define CSAC_SIMD_FMA 0
#define CSAC_VLEN 4
typedef __m128 csac_vf;
#define csac_vload(p) _mm_loadu_ps(p)
#define csac_vstore(p, v) _mm_storeu_ps((p), (v))
#define csac_vset1(x) _mm_set1_ps(x)
#define csac_vzero() _mm_setzero_ps()
#define csac_vadd(a, b) _mm_add_ps((a), (b))
#define csac_vsub(a, b) _mm_sub_ps((a), (b))
#define csac_vmul(a, b) _mm_mul_ps((a), (b))
#define csac_vmax(a, b) _mm_max_ps((a), (b))
#define csac_vmadd(a, b, c) _mm_add_ps((a), _mm_mul_ps((b), (c)))
#define csac_vmax_pairs(a, b) _mm_max_ps(_mm_shuffle_ps((a), (b), 0xDD), _mm_shuffle_ps((a), (b), 0x88))
#define csac_vunzip_even(a, b) _mm_shuffle_ps((a), (b), 0x88)
#define csac_vzip_lo(a, b) _mm_unpacklo_ps((a), (b))
#define csac_vzip_hi(a, b) _mm_unpackhi_ps((a), (b))
static inline float csac_vhsum(csac_vf v) {
    __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

#else
#define CSAC_SIMD_NAME "scalar"
#define CSAC_SIMD_FMA 0
#define CSAC_VLEN 1
typedef float csac_vf;
#define csac_vload(p) (*(p))
#define csac_vstore(p, v) (*(p) = (v))
#define csac_vset1(x) (x)
#define csac_vzero() 0.0f
#define csac_vadd(a, b) ((a) + (b))
#define csac_vsub(a, b) ((a) - (b))
#define csac_vmul(a, b) ((a) * (b))
#define csac_vmax(a, b) ((a) > (b) ? (a) : (b))
#define csac_vmadd(a, b, c) ((a) + (b) * (c))
#define csac_vmax_pairs(a, b) ((b) > (a) ? (b) : (a))
#define csac_vunzip_even(a, b) (a)
#define csac_vzip_lo(a, b) (a)
#define csac_vzip_hi(a, b) (b)
#define csac_vhsum(v) (v)
#endif

#endif /* CSAC_SIMD_H */
