#include "lmx_kernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LMXK_X86 1
#endif

static int max_isa = LMXK_ISA_AVX512;

int lmxk_set_max_isa(int isa) {
    int previous = max_isa;
    max_isa = isa;
    return previous;
}

/* ---- widening one element ------------------------------------------------------------------- */

static inline float bf16_to_f32(uint16_t bits) {
    uint32_t wide = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &wide, sizeof value);
    return value;
}

static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exponent = 127 - 15 + 1;
            while (!(mantissa & 0x400)) { mantissa <<= 1; exponent--; }
            bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static inline float load_weight(const void *w, int dtype, size_t index) {
    switch (dtype) {
    case LMXK_F16: return f16_to_f32(((const uint16_t *)w)[index]);
    case LMXK_BF16: return bf16_to_f32(((const uint16_t *)w)[index]);
    default: return ((const float *)w)[index];
    }
}

/* ---- portable path: plain C, one row against every token ---------------------------------------- */

static void linear_portable(float *y, const float *x, size_t tokens, size_t in, const void *w, int dtype, size_t out,
                            const float *bias, size_t o_begin, size_t o_end) {
    for (size_t o = o_begin; o < o_end; o++) {
        float b = bias ? bias[o] : 0.0f;
        for (size_t t = 0; t < tokens; t++) {
            const float *xt = x + t * in;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            size_t i = 0;
            for (; i + 4 <= in; i += 4) {
                s0 += xt[i] * load_weight(w, dtype, o * in + i);
                s1 += xt[i + 1] * load_weight(w, dtype, o * in + i + 1);
                s2 += xt[i + 2] * load_weight(w, dtype, o * in + i + 2);
                s3 += xt[i + 3] * load_weight(w, dtype, o * in + i + 3);
            }
            for (; i < in; i++) s0 += xt[i] * load_weight(w, dtype, o * in + i);
            y[t * out + o] = (s0 + s1) + (s2 + s3) + b;
        }
    }
}

/* ---- AVX2 path ---------------------------------------------------------------------------------- */
#ifdef LMXK_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))
/* Inlined into one copy of the kernel per dtype, so the dtype switch folds away in the loops. */
#define AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

AVX2_INLINE __m256 load8(const void *w, int dtype, size_t index) {
    switch (dtype) {
    case LMXK_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + index)));
    case LMXK_BF16: {
        __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + index)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
    default: return _mm256_loadu_ps((const float *)w + index);
    }
}

AVX2_INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Four rows r0..r3 (f32 or widened on the fly) against tokens t and t+1: 8 accumulators. */
AVX2_INLINE void block4x2(float *y, const float *x0, const float *x1, const void *w, int dtype, size_t in,
                          size_t out, size_t o, const float *bias, int two) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    size_t i = 0;
    for (; i + 8 <= in; i += 8) {
        __m256 v0 = _mm256_loadu_ps(x0 + i);
        __m256 v1 = two ? _mm256_loadu_ps(x1 + i) : v0;
        __m256 w0 = load8(w, dtype, (o + 0) * in + i);
        __m256 w1 = load8(w, dtype, (o + 1) * in + i);
        __m256 w2 = load8(w, dtype, (o + 2) * in + i);
        __m256 w3 = load8(w, dtype, (o + 3) * in + i);
        a00 = _mm256_fmadd_ps(w0, v0, a00); a01 = _mm256_fmadd_ps(w0, v1, a01);
        a10 = _mm256_fmadd_ps(w1, v0, a10); a11 = _mm256_fmadd_ps(w1, v1, a11);
        a20 = _mm256_fmadd_ps(w2, v0, a20); a21 = _mm256_fmadd_ps(w2, v1, a21);
        a30 = _mm256_fmadd_ps(w3, v0, a30); a31 = _mm256_fmadd_ps(w3, v1, a31);
    }
    float s[4][2] = {{hsum(a00), hsum(a01)}, {hsum(a10), hsum(a11)}, {hsum(a20), hsum(a21)}, {hsum(a30), hsum(a31)}};
    for (; i < in; i++) {
        for (int r = 0; r < 4; r++) {
            float wv = load_weight(w, dtype, (o + r) * in + i);
            s[r][0] += wv * x0[i];
            s[r][1] += wv * x1[i];
        }
    }
    for (int r = 0; r < 4; r++) {
        float b = bias ? bias[o + r] : 0.0f;
        y[o + r] = s[r][0] + b;
        if (two) y[out + o + r] = s[r][1] + b;
    }
}

/* Decode: one row against one token, read in memory order (a single sequential stream, which
 * the hardware prefetcher follows best; interleaving several short rows measured far slower),
 * with four accumulators so the FMA chains overlap. */
AVX2_INLINE float row_dot(const float *x, const void *w, int dtype, size_t offset, size_t in) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= in; i += 32) {
        a0 = _mm256_fmadd_ps(load8(w, dtype, offset + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load8(w, dtype, offset + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load8(w, dtype, offset + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load8(w, dtype, offset + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= in; i += 8) a0 = _mm256_fmadd_ps(load8(w, dtype, offset + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < in; i++) s += load_weight(w, dtype, offset + i) * x[i];
    return s;
}

AVX2_INLINE void linear_avx2(float *y, const float *x, size_t tokens, size_t in, const void *w, int dtype, size_t out,
                             const float *bias, size_t o_begin, size_t o_end, float *rows) {
    size_t o = o_begin;
    if (tokens == 1)
        for (; o < o_end; o++) y[o] = row_dot(x, w, dtype, o * in, in) + (bias ? bias[o] : 0.0f);
    for (; o + 4 <= o_end; o += 4) {
        /* With many tokens, widen the four rows once instead of once per token pair (when there is
         * a buffer for them). */
        const void *block = w;
        int block_dtype = dtype;
        size_t block_row = o;
        if (rows && tokens > 2) {
            for (size_t r = 0; r < 4; r++) {
                size_t i = 0;
                for (; i + 8 <= in; i += 8) _mm256_storeu_ps(rows + r * in + i, load8(w, dtype, (o + r) * in + i));
                for (; i < in; i++) rows[r * in + i] = load_weight(w, dtype, (o + r) * in + i);
            }
            block = rows;
            block_dtype = LMXK_F32;
            block_row = 0;
        }
        size_t t = 0;
        for (; t + 2 <= tokens; t += 2)
            block4x2(y + t * out - block_row + o, x + t * in, x + (t + 1) * in, block, block_dtype, in, out, block_row,
                     bias ? bias + o - block_row : NULL, 1);
        if (t < tokens)
            block4x2(y + t * out - block_row + o, x + t * in, x + t * in, block, block_dtype, in, out, block_row,
                     bias ? bias + o - block_row : NULL, 0);
    }
    for (; o < o_end; o++) {
        float b = bias ? bias[o] : 0.0f;
        for (size_t t = 0; t < tokens; t++) y[t * out + o] = row_dot(x + t * in, w, dtype, o * in, in) + b;
    }
}

#define LINEAR_FOR(name, code)                                                                                 \
    AVX2 static void name(float *y, const float *x, size_t tokens, size_t in, const void *w, size_t out,       \
                          const float *bias, size_t o_begin, size_t o_end, float *rows) {                      \
        linear_avx2(y, x, tokens, in, w, code, out, bias, o_begin, o_end, rows);                               \
    }
LINEAR_FOR(linear_avx2_f32, LMXK_F32)
LINEAR_FOR(linear_avx2_f16, LMXK_F16)
LINEAR_FOR(linear_avx2_bf16, LMXK_BF16)
#endif

#ifdef LMXK_X86
/* Decode with bf16 weights on AVX-512, rows [o_begin, o_end). A bf16 is the top half of an f32, so
 * 32 of them loaded as 16 32-bit lanes give the odd elements by masking the low half and the even
 * ones by shifting it up: two integer ops per 32 weights instead of a widening per 16. x comes
 * de-interleaved to match: xe[16b + k] = x[32b + 2k], xo[16b + k] = x[32b + 2k + 1]. */
__attribute__((target("avx512f,avx2,fma,f16c"))) static void decode_bf16_avx512(
    float *y, const float *x, size_t in, const uint16_t *w, size_t o_begin, size_t o_end, const float *bias, float *xe,
    float *xo) {
    size_t body = in / 32 * 32;
    for (size_t i = 0; i < body; i += 2) xe[i / 2] = x[i], xo[i / 2] = x[i + 1];
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    size_t o = o_begin;
#define LMXK_BF16_STEP(acc, row)                                                                             \
    {                                                                                                        \
        __m512i raw = _mm512_loadu_si512((const void *)(w + (row) * in + i));                                \
        acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(raw, 16)), ve, acc);                     \
        acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(raw, high)), vo, acc);                    \
    }
    /* Row after row, in memory order (one sequential stream for the prefetcher), with four
     * accumulators per row so the FMA chains overlap. */
    for (; o < o_end; o++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t i = 0;
        for (; i + 128 <= body; i += 128) {
            { __m512 ve = _mm512_loadu_ps(xe + i / 2), vo = _mm512_loadu_ps(xo + i / 2); LMXK_BF16_STEP(a0, o) }
            { size_t i2 = i + 32; __m512 ve = _mm512_loadu_ps(xe + i2 / 2), vo = _mm512_loadu_ps(xo + i2 / 2);
              __m512i raw = _mm512_loadu_si512((const void *)(w + o * in + i2));
              a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(raw, 16)), ve, a1);
              a1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(raw, high)), vo, a1); }
            { size_t i2 = i + 64; __m512 ve = _mm512_loadu_ps(xe + i2 / 2), vo = _mm512_loadu_ps(xo + i2 / 2);
              __m512i raw = _mm512_loadu_si512((const void *)(w + o * in + i2));
              a2 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(raw, 16)), ve, a2);
              a2 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(raw, high)), vo, a2); }
            { size_t i2 = i + 96; __m512 ve = _mm512_loadu_ps(xe + i2 / 2), vo = _mm512_loadu_ps(xo + i2 / 2);
              __m512i raw = _mm512_loadu_si512((const void *)(w + o * in + i2));
              a3 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(raw, 16)), ve, a3);
              a3 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(raw, high)), vo, a3); }
        }
        for (; i < body; i += 32) {
            __m512 ve = _mm512_loadu_ps(xe + i / 2), vo = _mm512_loadu_ps(xo + i / 2);
            LMXK_BF16_STEP(a0, o)
        }
        float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        for (size_t t = body; t < in; t++) sum += bf16_to_f32(w[o * in + t]) * x[t];
        y[o] = sum + (bias ? bias[o] : 0.0f);
    }
#undef LMXK_BF16_STEP
}

static int has_avx512(void) {
    return lmxk_isa() >= LMXK_ISA_AVX512;
}
#endif

int lmxk_isa(void) {
#ifdef LMXK_X86
    static int cached = -1;
    if (cached < 0) {
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
        cached = avx2 && __builtin_cpu_supports("avx512f") ? LMXK_ISA_AVX512 : avx2 ? LMXK_ISA_AVX2 : LMXK_ISA_PORTABLE;
    }
    return cached < max_isa ? cached : max_isa;
#else
    return LMXK_ISA_PORTABLE;
#endif
}

void lmxk_linear(float *y, const float *x, size_t tokens, size_t in, const void *w, int dtype, size_t out,
                 const float *bias, size_t o_begin, size_t o_end) {
    if (o_begin >= o_end || tokens == 0) return;
#ifdef LMXK_X86
    if (tokens == 1 && dtype == LMXK_BF16 && has_avx512()) {
        float stack[4096];
        float *scratch = in <= sizeof stack / sizeof *stack ? stack : malloc(in * sizeof(float));
        if (scratch) {
            decode_bf16_avx512(y, x, in, w, o_begin, o_end, bias, scratch, scratch + in / 2);
            if (scratch != stack) free(scratch);
            return;
        }
    }
    if (lmxk_isa() >= LMXK_ISA_AVX2) {
        float stack[4096];
        float *rows = NULL;
        /* Scratch: four widened rows for batches. */
        if (dtype != LMXK_F32 && tokens > 2) rows = 4 * in <= sizeof stack / sizeof *stack ? stack : malloc(4 * in * sizeof(float));
        switch (dtype) {
        case LMXK_F16: linear_avx2_f16(y, x, tokens, in, w, out, bias, o_begin, o_end, rows); break;
        case LMXK_BF16: linear_avx2_bf16(y, x, tokens, in, w, out, bias, o_begin, o_end, rows); break;
        default: linear_avx2_f32(y, x, tokens, in, w, out, bias, o_begin, o_end, rows); break;
        }
        if (rows != stack) free(rows);
        return;
    }
#endif
    linear_portable(y, x, tokens, in, w, dtype, out, bias, o_begin, o_end);
}

/* ---- backward: gradients of a projection --------------------------------------------------------- */

/* dx[t, :] += sum_o dy[t, o] * W[o, :] for the tokens of one block, one widened row at a time. The
 * loops are plain C; the AVX2 copy below is the same source compiled for AVX2/FMA. */
#define LMXK_BACKWARD_INPUT_BODY                                                                       \
    for (size_t o = 0; o < out; o++) {                                                                 \
        const float *w_row;                                                                            \
        if (dtype == LMXK_F32) {                                                                       \
            w_row = (const float *)w + o * in;                                                         \
        } else if (lmxk_type_block_size(dtype) > 1) {                                                  \
            lmxk_dequantize_row_reference(row, (const char *)w + o * lmxk_row_bytes(dtype, in), dtype, in); \
            w_row = row;                                                                               \
        } else {                                                                                       \
            for (size_t i = 0; i < in; i++) row[i] = load_weight(w, dtype, o * in + i);                \
            w_row = row;                                                                               \
        }                                                                                              \
        for (size_t t = t_begin; t < t_end; t++) {                                                     \
            const float a = dy[t * out + o];                                                           \
            if (a == 0.0f) continue;                                                                   \
            float *restrict d = dx + t * in;                                                           \
            for (size_t i = 0; i < in; i++) d[i] += a * w_row[i];                                      \
        }                                                                                              \
    }

static void backward_input_portable(float *restrict dx, const float *restrict dy, size_t in, const void *w, int dtype,
                                    size_t out, size_t t_begin, size_t t_end, float *restrict row) {
    LMXK_BACKWARD_INPUT_BODY
}

#ifdef LMXK_X86
__attribute__((target("avx2,fma")))
static void backward_input_avx2(float *restrict dx, const float *restrict dy, size_t in, const void *w, int dtype,
                                size_t out, size_t t_begin, size_t t_end, float *restrict row) {
    LMXK_BACKWARD_INPUT_BODY
}
#endif
#undef LMXK_BACKWARD_INPUT_BODY

int lmxk_linear_backward_input(float *dx, const float *dy, size_t in, const void *w, int dtype, size_t out,
                               size_t t_begin, size_t t_end) {
    if (t_begin >= t_end) return 0;
    float *row = dtype == LMXK_F32 ? NULL : malloc(in * sizeof(float));
    if (dtype != LMXK_F32 && !row) return -1;
#ifdef LMXK_X86
    if (lmxk_isa() >= LMXK_ISA_AVX2) backward_input_avx2(dx, dy, in, w, dtype, out, t_begin, t_end, row);
    else
#endif
        backward_input_portable(dx, dy, in, w, dtype, out, t_begin, t_end, row);
    free(row);
    return 0;
}

#define LMXK_BACKWARD_WEIGHT_BODY                                                                      \
    for (size_t t = 0; t < tokens; t++) {                                                              \
        const float *restrict x_row = x + t * in;                                                      \
        for (size_t o = o_begin; o < o_end; o++) {                                                     \
            const float a = dy[t * out + o];                                                           \
            if (a == 0.0f) continue;                                                                   \
            float *restrict g = dw + o * in;                                                           \
            for (size_t i = 0; i < in; i++) g[i] += a * x_row[i];                                      \
        }                                                                                              \
    }

static void backward_weight_portable(float *restrict dw, const float *restrict dy, const float *restrict x, size_t tokens,
                                     size_t in, size_t out, size_t o_begin, size_t o_end) {
    LMXK_BACKWARD_WEIGHT_BODY
}

#ifdef LMXK_X86
__attribute__((target("avx2,fma")))
static void backward_weight_avx2(float *restrict dw, const float *restrict dy, const float *restrict x, size_t tokens,
                                 size_t in, size_t out, size_t o_begin, size_t o_end) {
    LMXK_BACKWARD_WEIGHT_BODY
}
#endif
#undef LMXK_BACKWARD_WEIGHT_BODY

void lmxk_linear_backward_weight(float *dw, const float *dy, const float *x, size_t tokens, size_t in, size_t out,
                                 size_t o_begin, size_t o_end) {
#ifdef LMXK_X86
    if (lmxk_isa() >= LMXK_ISA_AVX2) {
        backward_weight_avx2(dw, dy, x, tokens, in, out, o_begin, o_end);
        return;
    }
#endif
    backward_weight_portable(dw, dy, x, tokens, in, out, o_begin, o_end);
}
