import Glibc

// Causal attention over one whole sequence held in memory (training), keeping the probabilities
// for the backward pass. Same maths as `attentionForward`, which reads a KV cache instead:
//   s[t, h, p] = q[t, h] . k[p, g(h)] / sqrt(D),  P = softmax_p(s) over p in window(t) = [first(t), t]
//   out[t, h] = sum_p P[h, t, p] v[p, g(h)],  g(h) = h / (H / Hkv),  first(t) = max(0, t - window + 1)
//   q: [T, H, D], k, v: [T, Hkv, D], probs: [H, T, T] (row t uses columns first(t)...t), out: [T, H, D]

func sequenceAttentionForward(
    _ out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
    k: UnsafePointer<Float>, v: UnsafePointer<Float>, tokens: Int, heads: Int, kvHeads: Int, headDim: Int, window: Int?
) {
    let group = heads / kvHeads
    let scale = 1 / Float(headDim).squareRoot()
    for h in 0..<heads {
        let g = h / group
        for t in 0..<tokens {
            let first = window.map { max(0, t - $0 + 1) } ?? 0
            let row = probs + (h * tokens + t) * tokens
            let query = q + (t * heads + h) * headDim
            for p in first...t { row[p] = dot(query, k + (p * kvHeads + g) * headDim, headDim) * scale }
            softmaxInPlace(row + first, t - first + 1)
            let o = out + (t * heads + h) * headDim
            o.update(repeating: 0, count: headDim)
            for p in first...t { axpy(o, row[p], v + (p * kvHeads + g) * headDim, headDim) }
        }
    }
}

/// Gradients of `sequenceAttentionForward`, accumulated into dq, dk, dv:
///   dv[p] += P[t, p] dOut[t];  dP[t, p] = dOut[t] . v[p];  dS = P (dP - sum_p P dP)
///   dq[t] += scale sum_p dS[t, p] k[p];  dk[p] += scale dS[t, p] q[t]
func sequenceAttentionBackward(
    dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
    _ dOut: UnsafePointer<Float>, probs: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    v: UnsafePointer<Float>, tokens: Int, heads: Int, kvHeads: Int, headDim: Int, window: Int?
) {
    let group = heads / kvHeads
    let scale = 1 / Float(headDim).squareRoot()
    withScratch(count: tokens) { dScores in
        for h in 0..<heads {
            let g = h / group
            for t in 0..<tokens {
                let first = window.map { max(0, t - $0 + 1) } ?? 0
                let row = probs + (h * tokens + t) * tokens
                let gradOut = dOut + (t * heads + h) * headDim
                var inner: Float = 0
                for p in first...t {
                    let valueRow = (p * kvHeads + g) * headDim
                    axpy(dv + valueRow, row[p], gradOut, headDim)
                    dScores[p] = dot(gradOut, v + valueRow, headDim)
                    inner += row[p] * dScores[p]
                }
                let queryRow = (t * heads + h) * headDim
                for p in first...t {
                    let ds = row[p] * (dScores[p] - inner) * scale
                    let keyRow = (p * kvHeads + g) * headDim
                    axpy(dq + queryRow, ds, k + keyRow, headDim)
                    axpy(dk + keyRow, ds, q + queryRow, headDim)
                }
            }
        }
    }
}
