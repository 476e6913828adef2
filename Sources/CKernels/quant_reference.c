/*
 * quant_reference.c — the block formats of ggml's quantized types, defined by plain C: block sizes
 * and the dequantization of a row. The fast kernels are tested against these.
 */
#include "lmx_kernels.h"

#include <string.h>

static const struct {
    size_t block_size, block_bytes;
} type_layouts[LMXK_TYPE_COUNT] = {
    [LMXK_F32] = {1, 4},      [LMXK_F16] = {1, 2},      [LMXK_BF16] = {1, 2},     [LMXK_Q8_0] = {32, 34},
    [LMXK_Q4_0] = {32, 18},   [LMXK_Q4_1] = {32, 20},   [LMXK_Q5_0] = {32, 22},   [LMXK_Q5_1] = {32, 24},
    [LMXK_Q4_K] = {256, 144}, [LMXK_Q5_K] = {256, 176}, [LMXK_Q6_K] = {256, 210},
};

size_t lmxk_type_block_size(int type) {
    return type >= 0 && type < LMXK_TYPE_COUNT ? type_layouts[type].block_size : 0;
}

size_t lmxk_type_block_bytes(int type) {
    return type >= 0 && type < LMXK_TYPE_COUNT ? type_layouts[type].block_bytes : 0;
}

size_t lmxk_row_bytes(int type, size_t cols) {
    size_t block = lmxk_type_block_size(type);
    if (block == 0 || cols % block != 0) return 0;
    return cols / block * type_layouts[type].block_bytes;
}

/* ---- scalar pieces ------------------------------------------------------------------------------ */

static float half_to_float(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
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

static float bfloat_to_float(const uint8_t *p) {
    uint32_t bits = (uint32_t)(p[0] | p[1] << 8) << 16;
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* The K-quants' packed 6-bit scale and min of sub-block j (0..7) from their 12 bytes. */
static void k_scale_min(int j, const uint8_t *q, uint8_t *scale, uint8_t *min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *min = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* ---- one block each ----------------------------------------------------------------------------- */

/* Q8_0: f16 d, int8 q[32]; y = d q. */
static void dequantize_q8_0(float *y, const uint8_t *b) {
    float d = half_to_float(b);
    for (int j = 0; j < 32; j++) y[j] = (int8_t)b[2 + j] * d;
}

/* Q4_0: f16 d, 16 bytes of nibbles (low: elements 0..15, high: 16..31); y = d (q - 8). */
static void dequantize_q4_0(float *y, const uint8_t *b) {
    float d = half_to_float(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = ((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = ((qs[j] >> 4) - 8) * d;
    }
}

/* Q4_1: f16 d, f16 m, nibbles as Q4_0; y = d q + m. */
static void dequantize_q4_1(float *y, const uint8_t *b) {
    float d = half_to_float(b), m = half_to_float(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (qs[j] & 0x0F) * d + m;
        y[j + 16] = (qs[j] >> 4) * d + m;
    }
}

/* The fifth bits of Q5_0/Q5_1: bit j of the little-endian 32-bit qh is element j's. */
static uint32_t fifth_bits(const uint8_t *qh) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* Q5_0: f16 d, 4 bytes of fifth bits, nibbles as Q4_0; y = d (q - 16). */
static void dequantize_q5_0(float *y, const uint8_t *b) {
    float d = half_to_float(b);
    uint32_t qh = fifth_bits(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int x0 = (qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
        int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
        y[j] = (x0 - 16) * d;
        y[j + 16] = (x1 - 16) * d;
    }
}

/* Q5_1: f16 d, f16 m, fifth bits, nibbles; y = d q + m. */
static void dequantize_q5_1(float *y, const uint8_t *b) {
    float d = half_to_float(b), m = half_to_float(b + 2);
    uint32_t qh = fifth_bits(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int x0 = (qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
        int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
        y[j] = x0 * d + m;
        y[j + 16] = x1 * d + m;
    }
}

/* Q4_K: f16 d, f16 dmin, 12 bytes of eight 6-bit (scale, min) pairs, 128 bytes of nibbles. Each 64
 * elements take 32 bytes: low nibbles for the first sub-block of 32, high for the second;
 * y = d scale q - dmin min. */
static void dequantize_q4_k(float *y, const uint8_t *b) {
    float d = half_to_float(b), dmin = half_to_float(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
        uint8_t sc, m;
        k_scale_min(is, scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        k_scale_min(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
    }
}

/* Q5_K: Q4_K with a fifth bit per element in 32 bytes qh (bit 2i / 2i+1 of qh[l] for the i-th
 * pair of sub-blocks). */
static void dequantize_q5_k(float *y, const uint8_t *b) {
    float d = half_to_float(b), dmin = half_to_float(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
        uint8_t sc, m;
        k_scale_min(is, scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        k_scale_min(is + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
}

/* Q6_K: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales (one per 16 elements),
 * f16 d; y = d scale (q - 32). */
static void dequantize_q6_k(float *y, const uint8_t *b) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = half_to_float(b + 208);
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
    }
}

void lmxk_dequantize_row_reference(float *y, const void *row, int type, size_t cols) {
    const uint8_t *bytes = row;
    switch (type) {
    case LMXK_F32: memcpy(y, row, cols * sizeof(float)); return;
    case LMXK_F16: for (size_t i = 0; i < cols; i++) y[i] = half_to_float(bytes + 2 * i); return;
    case LMXK_BF16: for (size_t i = 0; i < cols; i++) y[i] = bfloat_to_float(bytes + 2 * i); return;
    default: break;
    }
    void (*block)(float *, const uint8_t *);
    switch (type) {
    case LMXK_Q8_0: block = dequantize_q8_0; break;
    case LMXK_Q4_0: block = dequantize_q4_0; break;
    case LMXK_Q4_1: block = dequantize_q4_1; break;
    case LMXK_Q5_0: block = dequantize_q5_0; break;
    case LMXK_Q5_1: block = dequantize_q5_1; break;
    case LMXK_Q4_K: block = dequantize_q4_k; break;
    case LMXK_Q5_K: block = dequantize_q5_k; break;
    case LMXK_Q6_K: block = dequantize_q6_k; break;
    default: return;
    }
    size_t size = type_layouts[type].block_size, stride = type_layouts[type].block_bytes;
    for (size_t b = 0; b < cols / size; b++) block(y + b * size, bytes + b * stride);
}

void lmxk_linear_dequantized(float *y, const float *x, size_t tokens, size_t in, const void *w, int type, size_t out,
                             const float *bias, size_t o_begin, size_t o_end, float *row) {
    size_t row_bytes = lmxk_row_bytes(type, in);
    for (size_t o = o_begin; o < o_end; o++) {
        lmxk_dequantize_row_reference(row, (const char *)w + o * row_bytes, type, in);
        float b = bias ? bias[o] : 0.0f;
        for (size_t t = 0; t < tokens; t++) {
            const float *xt = x + t * in;
            float sum = 0;
            for (size_t i = 0; i < in; i++) sum += xt[i] * row[i];
            y[t * out + o] = sum + b;
        }
    }
}
