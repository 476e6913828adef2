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

void lmxk_selective_scan_forward(float *y, const float *u, const float *delta, const float *a, const float *b,
                                 const float *cm, const float *d, float *state, float *states, size_t tokens,
                                 size_t channels, size_t n, size_t c_begin, size_t c_end) {
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
