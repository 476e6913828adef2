/*
 * ssm.c — Mamba's causal depthwise convolution and selective scan, forward and backward.
 * Each channel is independent in the forward pass, so callers split channels across threads.
 */
#include <math.h>
#include <string.h>

#include "lmx_kernels.h"

void lmxk_causal_conv_forward(float *out, const float *x, const float *w, const float *bias, float *history,
                              size_t tokens, size_t channels, size_t kernel, size_t c_begin, size_t c_end) {
    const size_t past = kernel - 1;
    for (size_t c = c_begin; c < c_end; c++) {
        const float *wc = w + c * kernel;
        float *hc = history ? history + c * past : NULL;
        for (size_t t = 0; t < tokens; t++) {
            float sum = bias ? bias[c] : 0.0f;
            for (size_t k = 0; k < kernel; k++) {
                /* input position s = t - past + k, possibly before this call */
                if (t + k >= past) {
                    sum += wc[k] * x[(t + k - past) * channels + c];
                } else if (hc) {
                    sum += wc[k] * hc[t + k];
                }
            }
            out[t * channels + c] = sum;
        }
        if (hc && past > 0) {
            /* the new history is the last `past` inputs of (history, x) */
            if (tokens >= past) {
                for (size_t k = 0; k < past; k++) hc[k] = x[(tokens - past + k) * channels + c];
            } else {
                memmove(hc, hc + tokens, (past - tokens) * sizeof(float));
                for (size_t k = 0; k < tokens; k++) hc[past - tokens + k] = x[k * channels + c];
            }
        }
    }
}

void lmxk_causal_conv_backward(float *dx, const float *dout, const float *w, size_t tokens, size_t channels,
                               size_t kernel) {
    const size_t past = kernel - 1;
    for (size_t t = 0; t < tokens; t++) {
        for (size_t k = 0; k < kernel; k++) {
            if (t + k < past) continue;
            const size_t s = t + k - past;
            for (size_t c = 0; c < channels; c++) dx[s * channels + c] += w[c * kernel + k] * dout[t * channels + c];
        }
    }
}

/* The reference scan: one channel at a time, libm expf. */
static void scan_portable(float *y, const float *u, const float *delta, const float *a, const float *b, const float *cm,
                          const float *d, float *state, float *states, size_t tokens, size_t channels, size_t n,
                          size_t c_begin, size_t c_end) {
    for (size_t c = c_begin; c < c_end; c++) {
        float *s = state + c * n;
        const float *ac = a + c * n;
        for (size_t t = 0; t < tokens; t++) {
            const float dt = delta[t * channels + c], ut = u[t * channels + c];
            const float *bt = b + t * n, *ct = cm + t * n;
            const float dtu = dt * ut;
            float out = 0.0f;
            for (size_t j = 0; j < n; j++) {
                s[j] = expf(dt * ac[j]) * s[j] + dtu * bt[j];
                out += s[j] * ct[j];
            }
            y[t * channels + c] = out + d[c] * ut;
            if (states) memcpy(states + (t * channels + c) * n, s, n * sizeof(float));
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

/* exp(x) for x <= 0 (dt * A is never positive): Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2,
 * then Cephes' degree-6 polynomial for exp(r) (about 1 ulp) and 2^k through the exponent bits.
 * Below -87.3 the result is the smallest normal's order, not 0: a state scaled by it is 0 anyway. */
__attribute__((target("avx2,fma"))) static inline __m256 exp_nonpositive(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

/* The scan with the state dimension in AVX2 registers, 8 states at a time (n % 8 == 0). */
__attribute__((target("avx2,fma"))) static void scan_avx2(float *y, const float *u, const float *delta, const float *a,
                                                          const float *b, const float *cm, const float *d, float *state,
                                                          float *states, size_t tokens, size_t channels, size_t n,
                                                          size_t c_begin, size_t c_end) {
    for (size_t c = c_begin; c < c_end; c++) {
        float *s = state + c * n;
        const float *ac = a + c * n;
        for (size_t t = 0; t < tokens; t++) {
            const float ut = u[t * channels + c];
            const __m256 dt = _mm256_set1_ps(delta[t * channels + c]), dtu = _mm256_set1_ps(delta[t * channels + c] * ut);
            const float *bt = b + t * n, *ct = cm + t * n;
            __m256 out = _mm256_setzero_ps();
            for (size_t j = 0; j < n; j += 8) {
                const __m256 decay = exp_nonpositive(_mm256_mul_ps(dt, _mm256_loadu_ps(ac + j)));
                const __m256 next = _mm256_fmadd_ps(decay, _mm256_loadu_ps(s + j), _mm256_mul_ps(dtu, _mm256_loadu_ps(bt + j)));
                _mm256_storeu_ps(s + j, next);
                out = _mm256_fmadd_ps(next, _mm256_loadu_ps(ct + j), out);
            }
            const __m128 half = _mm_add_ps(_mm256_castps256_ps128(out), _mm256_extractf128_ps(out, 1));
            const __m128 pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
            y[t * channels + c] = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1))) + d[c] * ut;
            if (states) memcpy(states + (t * channels + c) * n, s, n * sizeof(float));
        }
    }
}
#endif

void lmxk_selective_scan_forward(float *y, const float *u, const float *delta, const float *a, const float *b,
                                 const float *cm, const float *d, float *state, float *states, size_t tokens,
                                 size_t channels, size_t n, size_t c_begin, size_t c_end) {
#if defined(__x86_64__)
    if (n % 8 == 0 && lmxk_isa() >= LMXK_ISA_AVX2) {
        scan_avx2(y, u, delta, a, b, cm, d, state, states, tokens, channels, n, c_begin, c_end);
        return;
    }
#endif
    scan_portable(y, u, delta, a, b, cm, d, state, states, tokens, channels, n, c_begin, c_end);
}

void lmxk_selective_scan_backward(float *du, float *ddelta, float *db, float *dcm, const float *dy, const float *u,
                                  const float *delta, const float *a, const float *b, const float *cm, const float *d,
                                  const float *states, size_t tokens, size_t channels, size_t n) {
    float ds[256];
    for (size_t c = 0; c < channels; c++) {
        const float *ac = a + c * n;
        for (size_t j0 = 0; j0 < n; j0 += 256) {
            const size_t width = n - j0 < 256 ? n - j0 : 256;
            memset(ds, 0, sizeof ds);
            for (size_t t = tokens; t-- > 0;) {
                const size_t tc = t * channels + c;
                const float g = dy[tc], dt = delta[tc], ut = u[tc];
                if (j0 == 0) du[tc] += g * d[c];
                float dDelta = 0.0f, dU = 0.0f;
                for (size_t jj = 0; jj < width; jj++) {
                    const size_t j = j0 + jj;
                    const float st = states[tc * n + j];
                    const float previous = t > 0 ? states[((t - 1) * channels + c) * n + j] : 0.0f;
                    const float decay = expf(dt * ac[j]);
                    dcm[t * n + j] += g * st;
                    /* ds: d loss / d s_t, from y_t and from s_{t+1} (already folded in) */
                    ds[jj] += g * cm[t * n + j];
                    dDelta += ds[jj] * (previous * decay * ac[j] + b[t * n + j] * ut);
                    db[t * n + j] += ds[jj] * dt * ut;
                    dU += ds[jj] * dt * b[t * n + j];
                    ds[jj] *= decay;
                }
                ddelta[tc] += dDelta;
                du[tc] += dU;
            }
        }
    }
}
