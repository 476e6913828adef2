import Glibc

/// Routes a forward pass through a session's experts: at each layer's input it decides the gates
/// (once per token, reused by every projection of the layer), then adds each expert's low-rank
/// delta, grouped by expert over the tokens that chose it.
struct ExpertAdapter: ProjectionAdapter {
    let config: ModelConfig
    let experts: [any Expert]
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
    /// Asked before every layer; true abandons the pass with LMX_ERR_CANCELLED.
    var shouldAbort: (() -> Bool)?
    /// LoRA deltas cannot fail; custom and plugin experts' callbacks can, and so can an abort check.
    var canFail: Bool { shouldAbort != nil || (mode != .none && experts.contains { !($0 is LoRAExpert) }) }

    init(config: ModelConfig, experts: [any Expert], router: Router?, mode: RoutingMode, topK: Int, temperature: Float,
         firstPosition: Int, contextSums: [[Float]]) {
        self.config = config
        self.experts = experts
        self.router = router
        self.mode = mode
        self.topK = topK
        self.temperature = temperature
        self.firstPosition = firstPosition
        self.contextSums = contextSums
    }

    mutating func beginLayer(_ layer: Int, routerInput h: UnsafePointer<Float>, tokens: Int) throws {
        if let shouldAbort, shouldAbort() {
            throw LoRAMixerError(.cancelled, "the abort callback stopped the evaluation before layer \(layer); the session is unchanged")
        }
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
                    let selected = p.withUnsafeBufferPointer { topIndices($0.baseAddress!, e, topK) }
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

    /// output[t] += sum_e g[t, e] * delta_e(input[t]) for each module, computed per expert over the
    /// tokens it was chosen for: gather the rows once for all the modules -> the expert's deltas
    /// (LoRA shares its A products among them) -> gated scatter-add.
    func addDeltas(layer: Int, modules: [ProjectionModule], input: UnsafePointer<Float>,
                   outputs: [UnsafeMutablePointer<Float>], tokens: Int) throws {
        guard let gates = layerGates.last, gates.experts > 0 else { return }
        let inFeatures = config.shape(of: modules[0]).inFeatures
        let outFeatures = modules.map { config.shape(of: $0).outFeatures }
        for (e, expert) in experts.enumerated() where modules.contains(where: { expert.adapts(layer: layer, module: $0) }) {
            let chosen = (0..<tokens).filter { gates.gates[$0 * gates.experts + e] != 0 }
            guard !chosen.isEmpty else { continue }
            var rows = [Float](repeating: 0, count: chosen.count * inFeatures)
            rows.withUnsafeMutableBufferPointer { rows in
                for (i, t) in chosen.enumerated() {
                    (rows.baseAddress! + i * inFeatures).update(from: input + t * inFeatures, count: inFeatures)
                }
            }
            let deltas = outFeatures.map { UnsafeMutablePointer<Float>.allocate(capacity: chosen.count * $0) }
            defer { deltas.forEach { $0.deallocate() } }
            for (delta, width) in zip(deltas, outFeatures) { delta.initialize(repeating: 0, count: chosen.count * width) }
            try expert.deltas(layer: layer, modules: modules, rows: rows, count: chosen.count, into: deltas)
            for (m, module) in modules.enumerated() where expert.adapts(layer: layer, module: module) {
                let width = outFeatures[m]
                for (i, t) in chosen.enumerated() {
                    axpy(outputs[m] + t * width, gates.gates[t * gates.experts + e], deltas[m] + i * width, width)
                }
            }
        }
    }
}
