internal import CKernels
import Glibc

/// Mamba's causal depthwise convolution, channels split across `pool`:
///   out[t, c] = bias[c] + sum_k w[c, k] x[t - (K - 1) + k, c], earlier inputs from `history`
///   ([channels, K - 1], updated to the last K - 1 inputs) or zeros when it is nil.
///   x, out: [tokens, channels]; weight: [channels, K]
func causalConvForward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>, history: UnsafeMutablePointer<Float>?, tokens: Int, channels: Int,
                       kernel: Int, pool: ThreadPool?) {
    let run = { (range: Range<Int>) in
        lmxk_causal_conv_forward(out, x, weight, bias, history, tokens, channels, kernel, range.lowerBound, range.upperBound)
    }
    if let pool { pool.parallelRanges(channels, granule: 16, run) } else { run(0..<channels) }
}

/// Gradient of `causalConvForward`'s input (zero history), accumulated into dx: [tokens, channels].
func causalConvBackward(_ dx: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        tokens: Int, channels: Int, kernel: Int) {
    lmxk_causal_conv_backward(dx, dOut, weight, tokens, channels, kernel)
}

/// The selective scan, channels split across `pool` (see lmxk_selective_scan_forward):
///   s = exp(delta_t a) s + delta_t b_t u_t;  y_t = s c_t + skip u_t
///   u, delta, y: [tokens, channels]; a: [channels, n]; b, c: [tokens, n]; state: [channels, n]
///   (in: before token 0; out: after the last); states: nil or [tokens, channels, n].
func selectiveScanForward(_ y: UnsafeMutablePointer<Float>, u: UnsafePointer<Float>, delta: UnsafePointer<Float>,
                          a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>, skip: UnsafePointer<Float>,
                          state: UnsafeMutablePointer<Float>, states: UnsafeMutablePointer<Float>?, tokens: Int,
                          channels: Int, stateSize n: Int, pool: ThreadPool?) {
    let run = { (range: Range<Int>) in
        lmxk_selective_scan_forward(y, u, delta, a, b, c, skip, state, states, tokens, channels, n,
                                    range.lowerBound, range.upperBound)
    }
    if let pool { pool.parallelRanges(channels, granule: 16, run) } else { run(0..<channels) }
}

/// Gradients of `selectiveScanForward` from a zero state, given its recorded `states`;
/// accumulated into du, dDelta ([tokens, channels]), db and dc ([tokens, n]).
func selectiveScanBackward(du: UnsafeMutablePointer<Float>, dDelta: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
                           dc: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, u: UnsafePointer<Float>,
                           delta: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>,
                           skip: UnsafePointer<Float>, states: UnsafePointer<Float>, tokens: Int, channels: Int, stateSize n: Int) {
    lmxk_selective_scan_backward(du, dDelta, db, dc, dy, u, delta, a, b, c, skip, states, tokens, channels, n)
}

/// x = silu(x) = x / (1 + exp(-x)) in place.   x: [n]
func siluInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] = x[i] / (1 + exp(-x[i])) }
}

/// d silu(x) / dx = s (1 + x (1 - s)), s = sigmoid(x).
@inline(__always) func siluDerivative(_ x: Float) -> Float {
    let s = 1 / (1 + exp(-x))
    return s * (1 + x * (1 - s))
}

/// softplus as torch computes it (beta 1, threshold 20): x > 20 ? x : log1p(exp(x)).
///   from, to: [n] (may alias)
func softplusForward(_ to: UnsafeMutablePointer<Float>, _ from: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { to[i] = from[i] > 20 ? from[i] : log1p(exp(from[i])) }
}

/// d softplus(x) / dx = sigmoid(x) (1 above torch's threshold).
@inline(__always) func softplusDerivative(_ x: Float) -> Float {
    x > 20 ? 1 : 1 / (1 + exp(-x))
}
