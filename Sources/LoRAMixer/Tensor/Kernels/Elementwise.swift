import Glibc

/// RMSNorm as in Llama: y = x / sqrt(mean(x^2) + eps) * weight
///   x, y: [T, d] (may alias), weight: [d]
func rmsNormForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    eps: Float, tokens: Int, dim: Int
) {
    for t in 0..<tokens {
        let row = x + t * dim
        let meanSquare = dot(row, row, dim) / Float(dim)
        let inverse = 1 / (meanSquare + eps).squareRoot()
        let out = y + t * dim
        for i in 0..<dim { out[i] = weight[i] * (row[i] * inverse) }
    }
}

/// SwiGLU activation in place: gate[i] = silu(gate[i]) * up[i]   gate, up: [n]
func swigluForward(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let g = gate[i]
        gate[i] = g / (1 + exp(-g)) * up[i]
    }
}

/// Numerically stable softmax in place over `n` values; returns nothing, leaves probabilities.
func softmaxInPlace(_ values: UnsafeMutablePointer<Float>, _ n: Int) {
    guard n > 0 else { return }
    var maximum = values[0]
    for i in 1..<n where values[i] > maximum { maximum = values[i] }
    var sum: Float = 0
    for i in 0..<n {
        values[i] = exp(values[i] - maximum)
        sum += values[i]
    }
    let inverse = 1 / sum
    for i in 0..<n { values[i] *= inverse }
}

/// Gradient of `rmsNormForward` with respect to x (the weight is frozen), accumulated:
///   r = 1/sqrt(mean(x^2) + eps), dx_i += r w_i dy_i - x_i r^3 / d * sum_j w_j dy_j x_j
///   x, dy, dx: [T, d] (dx must not alias x or dy)
func rmsNormBackward(
    _ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, eps: Float, tokens: Int, dim: Int
) {
    for t in 0..<tokens {
        let (row, grad, out) = (x + t * dim, dy + t * dim, dx + t * dim)
        let inverse = 1 / (dot(row, row, dim) / Float(dim) + eps).squareRoot()
        var projection: Float = 0
        for i in 0..<dim { projection += weight[i] * grad[i] * row[i] }
        let correction = projection * inverse * inverse * inverse / Float(dim)
        for i in 0..<dim { out[i] += inverse * weight[i] * grad[i] - row[i] * correction }
    }
}

/// Gradient of `swigluForward` from the pre-activation gate and up values:
///   a = silu(g) u, silu(g) = g s(g):  dg = da u s(g) (1 + g (1 - s(g))),  du = da silu(g)
///   gate, up, dOut: [n]; dGate, dUp: [n] (overwritten)
func swigluBackward(
    dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>,
    gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int
) {
    for i in 0..<count {
        let g = gate[i]
        let sigmoid = 1 / (1 + exp(-g))
        dGate[i] = dOut[i] * up[i] * sigmoid * (1 + g * (1 - sigmoid))
        dUp[i] = dOut[i] * g * sigmoid
    }
}

/// Gradient of softmax through its output: dz_i = p_i (dp_i - sum_j p_j dp_j).   p, dp, dz: [n]
func softmaxBackward(_ dz: UnsafeMutablePointer<Float>, _ dp: UnsafePointer<Float>, _ p: UnsafePointer<Float>, _ n: Int) {
    var inner: Float = 0
    for i in 0..<n { inner += p[i] * dp[i] }
    for i in 0..<n { dz[i] = p[i] * (dp[i] - inner) }
}

/// Indices of the `k` largest of `values[0..<n]`, largest first, ties to the lower index.
func topIndices(_ values: UnsafePointer<Float>, _ n: Int, _ k: Int) -> [Int] {
    Array((0..<n).sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }.prefix(k))
}
