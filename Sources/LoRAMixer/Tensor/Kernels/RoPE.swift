import Glibc

/// Rotary position embedding, transformers' "rotate half" layout: for pair i < D/2,
///   out[i]       = x[i] * cos(p * f_i) - x[i + D/2] * sin(p * f_i)
///   out[i + D/2] = x[i + D/2] * cos(p * f_i) + x[i] * sin(p * f_i)
///   x: [T, heads, D] in place; token t sits at position `firstPosition + t`.
func ropeForward(
    _ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDim: Int, firstPosition: Int,
    inverseFrequencies: [Double]
) {
    rotate(x, tokens: tokens, heads: heads, headDim: headDim, positions: { firstPosition + $0 },
           inverseFrequencies: inverseFrequencies, sign: 1)
}

/// Gradient of `ropeForward`: the rotation is orthogonal, so the gradient turns back by the same
/// angle.   dx: [T, heads, D] in place; token t sits at `positions(t)`.
func ropeBackward(
    _ dx: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDim: Int, positions: (Int) -> Int,
    inverseFrequencies: [Double]
) {
    rotate(dx, tokens: tokens, heads: heads, headDim: headDim, positions: positions,
           inverseFrequencies: inverseFrequencies, sign: -1)
}

/// `ropeForward` with the positions given per token (packed training sequences restart at 0).
func ropeForward(
    _ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDim: Int, positions: (Int) -> Int,
    inverseFrequencies: [Double]
) {
    rotate(x, tokens: tokens, heads: heads, headDim: headDim, positions: positions,
           inverseFrequencies: inverseFrequencies, sign: 1)
}

private func rotate(
    _ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDim: Int, positions: (Int) -> Int,
    inverseFrequencies: [Double], sign: Float
) {
    let half = headDim / 2
    withScratch(count: headDim) { table in
        for t in 0..<tokens {
            let position = Double(positions(t))
            for i in 0..<half {
                // transformers forms the angle in f32 before taking cos/sin; do the same.
                let angle = Float(position) * Float(inverseFrequencies[i])
                table[i] = cos(angle)
                table[half + i] = sign * sin(angle)
            }
            for h in 0..<heads {
                let v = x + (t * heads + h) * headDim
                for i in 0..<half {
                    let (a, b) = (v[i], v[i + half])
                    let (c, s) = (table[i], table[half + i])
                    v[i] = a * c - b * s
                    v[i + half] = b * c + a * s
                }
            }
        }
    }
}
