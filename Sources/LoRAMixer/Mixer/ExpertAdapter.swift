import Foundation

/// Routes a forward pass through a session's experts: at each layer's input it decides the gates
/// (once per token, reused by every projection of the layer), then adds each expert's low-rank
/// delta, grouped by expert over the tokens that chose it.
struct ExpertAdapter: ProjectionAdapter {
    let experts: [LoRAExpert]
    let router: Router?
    let mode: RoutingMode
    let topK: Int
    let temperature: Float
    /// Position of the first token of this pass (for the router's running context mean).
    let firstPosition: Int
    /// Per layer, the running sum of router inputs of earlier positions (context routers only).
    var contextSums: [[Float]]
    /// Per layer, the gates decided for this pass.
    private(set) var layerGates: [LayerGates] = []

    init(experts: [LoRAExpert], router: Router?, mode: RoutingMode, topK: Int, temperature: Float,
         firstPosition: Int, contextSums: [[Float]]) {
        self.experts = experts
        self.router = router
        self.mode = mode
        self.topK = topK
        self.temperature = temperature
        self.firstPosition = firstPosition
        self.contextSums = contextSums
    }

    mutating func beginLayer(_ layer: Int, routerInput h: UnsafePointer<Float>, tokens: Int) {
        let e = experts.count
        var gates = LayerGates(tokens: tokens, experts: e)
        switch mode {
        case .none:
            break
        case .fixed(let weights):
            let selected = (0..<e).filter { weights[$0] != 0 }
            for t in 0..<tokens { gates.set(token: t, selected: selected, values: selected.map { weights[$0] }) }
        case .uniform:
            for t in 0..<tokens { gates.set(token: t, selected: Array(0..<e), values: Array(repeating: 1 / Float(e), count: e)) }
        case .learned, .soft:
            guard let router else { break }
            let probabilities = routerProbabilities(layer: layer, router: router, h: h, tokens: tokens)
            for t in 0..<tokens {
                let p = Array(probabilities[(t * e)..<((t + 1) * e)])
                if mode == .soft {
                    gates.set(token: t, selected: Array(0..<e), values: p)
                } else {
                    let selected = Array((0..<e).sorted { p[$0] != p[$1] ? p[$0] > p[$1] : $0 < $1 }.prefix(topK))
                    let total = selected.reduce(Float(0)) { $0 + p[$1] }
                    gates.set(token: t, selected: selected, values: selected.map { p[$0] / total })
                }
            }
        }
        layerGates.append(gates)
    }

    /// p = softmax((W h + W_c c + b) / T) per token: [tokens, experts]. Advances the layer's
    /// running context sum when the router reads context.
    private mutating func routerProbabilities(layer: Int, router: Router, h: UnsafePointer<Float>, tokens: Int) -> [Float] {
        let e = experts.count
        let d = contextSums[layer].count
        let weights = router.layers[layer]
        var logits = [Float](repeating: 0, count: tokens * e)
        var context = [Float](repeating: 0, count: d)
        for t in 0..<tokens {
            let row = h + t * d
            for j in 0..<e {
                logits[t * e + j] = weights.weight.withUnsafeBufferPointer { dot(row, $0.baseAddress! + j * d, d) }
                    + (weights.bias?[j] ?? 0)
            }
            if let contextWeight = weights.contextWeight {
                for i in 0..<d { contextSums[layer][i] += row[i] }
                let count = Float(firstPosition + t + 1)
                for i in 0..<d { context[i] = contextSums[layer][i] / count }
                for j in 0..<e {
                    logits[t * e + j] += contextWeight.withUnsafeBufferPointer { dot($0.baseAddress! + j * d, context, d) }
                }
            }
            for j in 0..<e { logits[t * e + j] /= temperature }
            logits.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress! + t * e, e) }
        }
        return logits
    }

    /// output[t] += sum_e g[t, e] * s_e * B_e (A_e input[t]), computed per expert over the tokens
    /// it was chosen for: gather rows -> A -> B -> scaled scatter-add. B A is never formed.
    func addDelta(layer: Int, module: ProjectionModule, input: UnsafePointer<Float>,
                  output: UnsafeMutablePointer<Float>, tokens: Int) {
        guard let gates = layerGates.last, gates.experts > 0 else { return }
        for (e, expert) in experts.enumerated() {
            guard let lora = expert.weights(layer: layer, module: module) else { continue }
            let chosen = (0..<tokens).filter { gates.gates[$0 * gates.experts + e] != 0 }
            guard !chosen.isEmpty else { continue }
            loraDeltaForward(output, input, lora, rows: chosen,
                             rowScales: chosen.map { gates.gates[$0 * gates.experts + e] * lora.scale })
        }
    }
}

/// Grouped LoRA delta for the listed rows:
///   z = A u_t (rank values), y_t += rowScale_t * B z       u: [T, in], y: [T, out]
func loraDeltaForward(_ y: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ lora: LoRAWeights,
                      rows: [Int], rowScales: [Float]) {
    let (r, inFeatures, outFeatures) = (lora.rank, lora.inFeatures, lora.outFeatures)
    lora.a.withUnsafeBufferPointer { a in
        lora.b.withUnsafeBufferPointer { b in
            withScratch(count: r) { z in
                for (row, scale) in zip(rows, rowScales) {
                    for j in 0..<r { z[j] = dot(a.baseAddress! + j * inFeatures, u + row * inFeatures, inFeatures) * scale }
                    let out = y + row * outFeatures
                    for o in 0..<outFeatures { out[o] += dot(b.baseAddress! + o * r, z, r) }
                }
            }
        }
    }
}
