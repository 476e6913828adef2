import Foundation

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
