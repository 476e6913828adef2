/*
 * lmx_kernels.h — the compute kernels and thread pool under the Swift core (internal to
 * libloramixer; its version script keeps these symbols out of the exported ABI).
 */
#ifndef LMX_KERNELS_H
#define LMX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of weight matrices: plain floats, and ggml's block formats (ggml-common.h), whose
 * rows are runs of blocks: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 hold 32 elements per block, the K-quants
 * (Q4_K, Q5_K, Q6_K) 256. A row of a block type has a multiple of its block size elements. */
enum {
    LMXK_F32 = 0, LMXK_F16 = 1, LMXK_BF16 = 2,
    LMXK_Q8_0 = 3, LMXK_Q4_0 = 4, LMXK_Q4_1 = 5, LMXK_Q5_0 = 6, LMXK_Q5_1 = 7,
    LMXK_Q4_K = 8, LMXK_Q5_K = 9, LMXK_Q6_K = 10,
    LMXK_TYPE_COUNT = 11
};

/* Elements per block (1 for the float types) and bytes per block; 0 for an unknown type. */
size_t lmxk_type_block_size(int type);
size_t lmxk_type_block_bytes(int type);
/* Bytes of one row of `cols` elements; 0 for an unknown type or cols not a multiple of the block. */
size_t lmxk_row_bytes(int type, size_t cols);

/* The reference definition of every format: one row of `cols` elements (a multiple of the block
 * size) widened to f32, element by element in plain C (ggml's dequantize_row_* arithmetic, so the
 * values are bit-identical to ggml's and to the gguf package's). */
void lmxk_dequantize_row_reference(float *y, const void *row, int type, size_t cols);

/* Dense projection for output rows [o_begin, o_end):
 *   y[t * out + o] = sum_i x[t * in + i] * w[o * in + i] + (bias ? bias[o] : 0)
 *   x: [tokens, in] f32, w: [out, in] of `dtype` (aligned for it), y: [tokens, out] f32.
 * f16/bf16 are widened to f32 in registers. Uses the widest instruction set the CPU has and
 * lmxk_set_max_isa allows: AVX-512 (bf16 decode), AVX2/FMA/F16C, or portable C. */
void lmxk_linear(float *y, const float *x, size_t tokens, size_t in, const void *w, int dtype, size_t out,
                 const float *bias, size_t o_begin, size_t o_end);

/* lmxk_linear for weights of any type (f32, f16, bf16 or a block format): rows [o_begin, o_end)
 * are widened one at a time into `row` (scratch of `in` floats) with the reference dequantization
 * and dotted with every token in f32. Exact (no activation quantization) and slow: the reference
 * for the quantized kernels and the path for checking them. */
void lmxk_linear_dequantized(float *y, const float *x, size_t tokens, size_t in, const void *w, int type, size_t out,
                             const float *bias, size_t o_begin, size_t o_end, float *row);

/* Gradient of the input of a projection, for tokens [t_begin, t_end):
 *   dx[t * in + i] += sum_o dy[t * out + o] * w[o * in + i]
 *   dy: [tokens, out] f32, w: [out, in] of `dtype` (any type; block formats are dequantized a row at a
 *   time), dx: [tokens, in] f32 (accumulated into).
 * Each token's dx row is written by one call only, so token ranges can run on separate threads.
 * Returns 0, or -1 if the scratch row for widening f16/bf16 could not be allocated. */
int lmxk_linear_backward_input(float *dx, const float *dy, size_t in, const void *w, int dtype, size_t out,
                               size_t t_begin, size_t t_end);

/* Gradient of an f32 projection's weight, for output rows [o_begin, o_end):
 *   dw[o * in + i] += sum_t dy[t * out + o] * x[t * in + i]
 *   dy: [tokens, out], x: [tokens, in], dw: [out, in] (accumulated into); tokens in order, so
 * the sum is the same on every run. */
void lmxk_linear_backward_weight(float *dw, const float *dy, const float *x, size_t tokens, size_t in, size_t out,
                                 size_t o_begin, size_t o_end);

/* Causal depthwise convolution (Mamba's conv1d) for channels [c_begin, c_end):
 *   out[t * C + c] = bias[c] + sum_k w[c * K + k] * in(t - (K - 1) + k, c)
 * with in(s, c) = x[s * C + c] for s >= 0 and, for s < 0, history[c * (K - 1) + (K - 1) + s]
 * (the inputs before this call; zeros when history is NULL). A non-NULL history is then replaced
 * by each channel's last K - 1 inputs.   x, out: [tokens, C]; w: [C, K]; history: [C, K - 1]. */
void lmxk_causal_conv_forward(float *out, const float *x, const float *w, const float *bias, float *history,
                              size_t tokens, size_t channels, size_t kernel, size_t c_begin, size_t c_end);

/* Gradient of lmxk_causal_conv_forward's input (no history), for all channels:
 *   dx[s * C + c] += sum_k w[c * K + k] * dout[(s + K - 1 - k) * C + c]  over s + K - 1 - k < tokens. */
void lmxk_causal_conv_backward(float *dx, const float *dout, const float *w, size_t tokens, size_t channels,
                               size_t kernel);

/* Mamba's selective scan (zero-order hold on A) for channels [c_begin, c_end):
 *   s[c, j] = exp(delta[t, c] * a[c, j]) * s[c, j] + delta[t, c] * b[t, j] * u[t, c]
 *   y[t, c] = sum_j s[c, j] * cm[t, j] + d[c] * u[t, c]
 *   u, delta, y: [tokens, C]; a: [C, n]; b, cm: [tokens, n]; d: [C]; state: [C, n], read as the
 *   state before token 0 and left holding the state after the last token; states, if not NULL:
 *   [tokens, C, n], the state after each token (for the backward pass). With n a multiple of 8 and
 *   AVX2/FMA allowed (lmxk_set_max_isa), 8 states at a time with a polynomial exp (~1 ulp);
 *   otherwise the portable loop with expf. */
void lmxk_selective_scan_forward(float *y, const float *u, const float *delta, const float *a, const float *b,
                                 const float *cm, const float *d, float *state, float *states, size_t tokens,
                                 size_t channels, size_t n, size_t c_begin, size_t c_end);

/* Gradients of lmxk_selective_scan_forward from a zero initial state, for all channels, given
 * its recorded `states` and dy. Accumulates into du, ddelta ([tokens, C]), db and dcm
 * ([tokens, n]); a and d are constants here (frozen base weights). */
void lmxk_selective_scan_backward(float *du, float *ddelta, float *db, float *dcm, const float *dy, const float *u,
                                  const float *delta, const float *a, const float *b, const float *cm, const float *d,
                                  const float *states, size_t tokens, size_t channels, size_t n);

/* Instruction sets, in order. */
enum { LMXK_ISA_PORTABLE = 0, LMXK_ISA_AVX2 = 1, LMXK_ISA_AVX512 = 2 };

/* The widest instruction set lmxk_linear uses on this CPU (within the limit below). */
int lmxk_isa(void);

/* Caps the instruction set (tests run every path on one machine); returns the previous cap.
 * Not thread-safe: set it before kernels run concurrently. */
int lmxk_set_max_isa(int isa);

/* A persistent pool of worker threads. run() calls task(context, chunk, chunks) once for every
 * chunk 0 .. chunks-1; the calling thread and the workers claim chunks as they come free, so a
 * worker that lost its core to another process only delays the chunk it holds. Returns when every
 * chunk has finished. Idle workers spin briefly, then sleep. One run at a time per pool. */
typedef struct lmxk_pool lmxk_pool;
typedef void (*lmxk_task)(void *context, int chunk, int chunks);

/* A pool of `threads` threads in all (the caller counts as one); NULL if threads < 1 or creating
 * a thread failed. */
lmxk_pool *lmxk_pool_create(int threads);
int lmxk_pool_threads(const lmxk_pool *pool);
void lmxk_pool_run(lmxk_pool *pool, int chunks, lmxk_task task, void *context);
/* Stops and joins the workers. NULL is a no-op. */
void lmxk_pool_free(lmxk_pool *pool);

/* The CPUs this process may run on (its affinity mask); 0 if unknown. */
int lmxk_cpu_count(void);
/* The name the dynamic loader knows a dlopen() handle by (its link_map's l_name); NULL if unknown. */
const char *lmxk_dl_name(void *handle);

#ifdef __cplusplus
}
#endif

#endif
