/// Dense projection, as `nn.Linear`:
///   linearForward: y[t, o] = sum_i x[t, i] * W[o, i] + bias[o]
///   x: [T, in], W: [out, in] (f32/f16/bf16), bias: [out] or nil, y: [T, out] (overwritten)
/// Each weight row is read (and widened) once and applied to every token of the batch.
func linearForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: WeightMatrix,
    bias: UnsafePointer<Float>?, tokens: Int
) {
    let (inFeatures, outFeatures) = (weight.cols, weight.rows)
    withScratch(count: weight.f32Base == nil ? inFeatures : 0) { scratch in
        for o in 0..<outFeatures {
            let row: UnsafePointer<Float>
            if let f32 = weight.f32Base {
                row = f32 + o * inFeatures
            } else {
                weight.loadRow(o, into: scratch)
                row = UnsafePointer(scratch)
            }
            let b = bias?[o] ?? 0
            for t in 0..<tokens {
                y[t * outFeatures + o] = dot(x + t * inFeatures, row, inFeatures) + b
            }
        }
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

/// Runs `body` with a temporary f32 buffer of `count` elements.
@inline(__always)
func withScratch<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
    defer { buffer.deallocate() }
    return try body(buffer)
}
