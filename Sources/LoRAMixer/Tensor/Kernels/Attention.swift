import Glibc

/// Causal multi-head attention with grouped KV heads over a KV cache:
///   out[t, h] = sum_p softmax_p(q[t, h] . K[p, g(h)] / sqrt(D)) V[p, g(h)],
///   g(h) = h / (H / Hkv), keys p in [max(0, pos_t - window + 1), pos_t], pos_t = firstPosition + t.
///   q: [T, H, D], keys(g)/values(g): [P, D] for KV head g, P >= firstPosition + T, out: [T, H, D]
/// Computes the heads in `headRange` (all by default), so threads can share the heads out.
func attentionForward(
    _ out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, keys: (Int) -> UnsafePointer<Float>,
    values: (Int) -> UnsafePointer<Float>, tokens: Int, heads: Int, kvHeads: Int, headDim: Int,
    firstPosition: Int, window: Int?, headRange: Range<Int>? = nil
) {
    let group = heads / kvHeads
    let scale = 1 / Float(headDim).squareRoot()
    withScratch(count: firstPosition + tokens) { scores in
        for t in 0..<tokens {
            let position = firstPosition + t
            let first = window.map { max(0, position - $0 + 1) } ?? 0
            let span = position - first + 1
            for h in headRange ?? 0..<heads {
                let query = q + (t * heads + h) * headDim
                let (headKeys, headValues) = (keys(h / group), values(h / group))
                for p in first...position {
                    scores[p - first] = dot(query, headKeys + p * headDim, headDim) * scale
                }
                softmaxInPlace(scores, span)
                let o = out + (t * heads + h) * headDim
                o.update(repeating: 0, count: headDim)
                for p in first...position {
                    axpy(o, scores[p - first], headValues + p * headDim, headDim)
                }
            }
        }
    }
}
