internal import CKernels

/// Dense projection, as `nn.Linear`:
///   linearForward: y[t, o] = sum_i x[t, i] * W[o, i] + bias[o]
///   x: [T, in], W: [out, in] (f32/f16/bf16 widened in registers; block formats see `projectRows`),
///   bias: [out] or nil, y: [T, out]
/// The SIMD kernel lives in CKernels; output rows are split across the pool's threads, so each
/// thread streams its own part of W once for the whole batch.
func linearForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: WeightMatrix,
    bias: UnsafePointer<Float>?, tokens: Int, pool: ThreadPool? = nil
) {
    let (inFeatures, outFeatures) = (weight.cols, weight.rows)
    let run = { (rows: Range<Int>) in projectRows(y, x, weight, bias: bias, tokens: tokens, rows: rows) }
    // Below ~64k multiply-adds a second thread costs more than it saves.
    if let pool, tokens * inFeatures * outFeatures >= 1 << 16 {
        pool.parallelRanges(outFeatures, granule: 4, run)
    } else {
        run(0..<outFeatures)
    }
}

/// Several projections of one input (q, k, v; or gate, up) in a single parallel region: their
/// output rows are laid end to end and split across the threads, saving a synchronisation per
/// extra projection (decode runs hundreds of them per token).
///   x: [T, in]; for each i: ys[i] = x weights[i]^T + biases[i], ys[i]: [T, weights[i].rows]
func linearForward(
    _ ys: [UnsafeMutablePointer<Float>], _ x: UnsafePointer<Float>, _ weights: [WeightMatrix],
    biases: [UnsafePointer<Float>?], tokens: Int, pool: ThreadPool?
) {
    guard let pool, weights.count > 1 else {
        for i in weights.indices { linearForward(ys[i], x, weights[i], bias: biases[i], tokens: tokens, pool: pool) }
        return
    }
    let starts = weights.reduce(into: [0]) { $0.append($0.last! + $1.rows) }
    pool.parallelRanges(starts.last!, granule: 8) { rows in
        for i in weights.indices {
            let begin = max(rows.lowerBound, starts[i]), end = min(rows.upperBound, starts[i + 1])
            guard begin < end else { continue }
            projectRows(ys[i], x, weights[i], bias: biases[i], tokens: tokens, rows: (begin - starts[i])..<(end - starts[i]))
        }
    }
}

/// Output rows `rows` of `linearForward` on the calling thread: the float types by the SIMD kernel,
/// block formats one dequantized row at a time.
@inline(__always)
private func projectRows(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: WeightMatrix,
    bias: UnsafePointer<Float>?, tokens: Int, rows: Range<Int>
) {
    if weight.type.isQuantized {
        withScratch(count: weight.cols) { row in
            lmxk_linear_dequantized(y, x, tokens, weight.cols, weight.base, weight.type.kernelCode, weight.rows, bias,
                                    rows.lowerBound, rows.upperBound, row)
        }
    } else {
        lmxk_linear(y, x, tokens, weight.cols, weight.base, weight.type.kernelCode, weight.rows, bias,
                    rows.lowerBound, rows.upperBound)
    }
}

/// The naive reference for `linearForward`: one multiply-add at a time, in index order.
func linearForwardReference(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: WeightMatrix,
    bias: UnsafePointer<Float>?, tokens: Int
) {
    let values = weight.floats()
    for t in 0..<tokens {
        for o in 0..<weight.rows {
            var sum: Float = bias?[o] ?? 0
            for i in 0..<weight.cols { sum += x[t * weight.cols + i] * values[o * weight.cols + i] }
            y[t * weight.rows + o] = sum
        }
    }
}

/// The instruction sets of CKernels, narrowest first.
enum KernelISA: Int32, CaseIterable {
    case portable = 0, avx2, avx512
}

/// Caps the instruction set CKernels may use (tests run every path on one machine); returns the
/// previous cap. Not thread-safe.
@discardableResult
func setMaxKernelISA(_ isa: KernelISA) -> KernelISA {
    KernelISA(rawValue: lmxk_set_max_isa(isa.rawValue)) ?? .avx512
}

/// The instruction set the kernels use on this CPU (within the cap).
var kernelISA: KernelISA { KernelISA(rawValue: lmxk_isa()) ?? .portable }

/// Runs `body` with a temporary f32 buffer of `count` elements.
@inline(__always)
func withScratch<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
    defer { buffer.deallocate() }
    return try body(buffer)
}
