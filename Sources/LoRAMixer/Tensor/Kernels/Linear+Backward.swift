internal import CKernels

// The gradients of `linearForward` (y = x W^T + b):
//   linearBackwardInput:  dx[t, i] += sum_o dy[t, o] W[o, i]      dy: [T, out], W: [out, in], dx: [T, in]
//   linearBackwardWeight: dW[o, i] += sum_t dy[t, o] x[t, i]      f32 W only (trainable tensors)
// Both accumulate, so a projection's several consumers add into one gradient. Threads split the
// tokens (input) or the output rows (weight): every element is summed by one thread in a fixed
// order, so results are the same run after run.

/// dx += dy W for a stored weight (any type, widened row by row).
func linearBackwardInput(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ weight: WeightMatrix,
                         tokens: Int, pool: ThreadPool? = nil) {
    linearBackwardInput(dx, dy, weight.base, dtype: weight.type.kernelCode, rows: weight.rows, cols: weight.cols,
                        tokens: tokens, pool: pool)
}

/// dx += dy W for an f32 matrix `[rows = out, cols = in]` in memory.
func linearBackwardInput(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                         rows: Int, cols: Int, tokens: Int, pool: ThreadPool? = nil) {
    linearBackwardInput(dx, dy, UnsafeRawPointer(weight), dtype: Int32(LMXK_F32), rows: rows, cols: cols, tokens: tokens,
                        pool: pool)
}

private func linearBackwardInput(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ base: UnsafeRawPointer,
                                 dtype: Int32, rows: Int, cols: Int, tokens: Int, pool: ThreadPool?) {
    let run = { (range: Range<Int>) in
        // -1 only when a row of a few KB cannot be allocated; nothing sensible can continue.
        guard lmxk_linear_backward_input(dx, dy, cols, base, dtype, rows, range.lowerBound, range.upperBound) == 0 else {
            fatalError("out of memory in linearBackwardInput")
        }
    }
    if let pool, tokens > 1, tokens * rows * cols >= 1 << 16 { pool.parallelRanges(tokens, run) } else { run(0..<tokens) }
}

/// dW += dy^T x for an f32 weight `[out, in]`.
func linearBackwardWeight(_ dw: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                          tokens: Int, inFeatures: Int, outFeatures: Int, pool: ThreadPool? = nil) {
    let run = { (rows: Range<Int>) in
        lmxk_linear_backward_weight(dw, dy, x, tokens, inFeatures, outFeatures, rows.lowerBound, rows.upperBound)
    }
    if let pool, tokens * inFeatures * outFeatures >= 1 << 16 { pool.parallelRanges(outFeatures, run) } else { run(0..<outFeatures) }
}

/// y = x W^T for an f32 matrix `[rows = out, cols = in]` in memory (trainable LoRA and router tensors).
func linearForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                   rows: Int, cols: Int, tokens: Int, pool: ThreadPool? = nil) {
    let run = { (range: Range<Int>) in
        lmxk_linear(y, x, tokens, cols, weight, Int32(LMXK_F32), rows, nil, range.lowerBound, range.upperBound)
    }
    if let pool, tokens * rows * cols >= 1 << 16 { pool.parallelRanges(rows, granule: 4, run) } else { run(0..<rows) }
}

/// The naive reference for `linearBackwardInput`.
func linearBackwardInputReference(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ weight: WeightMatrix,
                                  tokens: Int) {
    let values = weight.floats()
    for t in 0..<tokens {
        for i in 0..<weight.cols {
            var sum: Float = 0
            for o in 0..<weight.rows { sum += dy[t * weight.rows + o] * values[o * weight.cols + i] }
            dx[t * weight.cols + i] += sum
        }
    }
}

/// The naive reference for `linearBackwardWeight`.
func linearBackwardWeightReference(_ dw: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                   tokens: Int, inFeatures: Int, outFeatures: Int) {
    for o in 0..<outFeatures {
        for i in 0..<inFeatures {
            var sum: Float = 0
            for t in 0..<tokens { sum += dy[t * outFeatures + o] * x[t * inFeatures + i] }
            dw[o * inFeatures + i] += sum
        }
    }
}
