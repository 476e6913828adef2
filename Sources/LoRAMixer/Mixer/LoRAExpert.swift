/// One LoRA expert: low-rank `A`/`B` pairs for some (layer, module) slots of a model. Immutable;
/// its tensors are stored once, however many sessions use it.
public final class LoRAExpert: Expert, @unchecked Sendable {
    public let name: String
    /// Where it came from (a folder, or "memory"), for messages.
    public let source: String
    /// `[layer][module.rawValue]`; nil where the expert has no tensors.
    let slots: [[LoRAWeights?]]
    /// Per layer, the A matrices of modules that read the same input (q, k, v; gate, up) stacked
    /// into one, so `deltas` computes all their A products in one pass over the rows.
    private let stacked: [[StackedA]]

    init(name: String, source: String, slots: [[LoRAWeights?]]) {
        self.name = name
        self.source = source
        self.slots = slots
        stacked = slots.map { layer in
            [[ProjectionModule.q, .k, .v], [.gate, .up]].compactMap { group in StackedA(group.filter { layer[$0.rawValue] != nil }, layer) }
        }
    }

    /// Modules the expert adapts in at least one layer.
    public var targetModules: [ProjectionModule] {
        ProjectionModule.allCases.filter { module in slots.contains { $0[module.rawValue] != nil } }
    }

    /// Layers the expert adapts.
    public var targetLayers: [Int] {
        slots.indices.filter { slots[$0].contains { $0 != nil } }
    }

    public var parameterCount: Int {
        slots.joined().compactMap { $0 }.reduce(0) { $0 + $1.a.rows * $1.a.cols + $1.b.rows * $1.b.cols }
    }

    public func weights(layer: Int, module: ProjectionModule) -> LoRAWeights? {
        slots.indices.contains(layer) ? slots[layer][module.rawValue] : nil
    }

    public func adapts(layer: Int, module: ProjectionModule) -> Bool {
        weights(layer: layer, module: module) != nil
    }

    public func delta(layer: Int, module: ProjectionModule, rows: UnsafePointer<Float>, count: Int,
                      into delta: UnsafeMutablePointer<Float>) {
        guard let lora = weights(layer: layer, module: module) else { return }
        loraDeltaForward(delta, rows, lora, count: count)
    }

    /// Shares the A products of modules with one input: z = rows [A_q; A_k; A_v]^T in one pass,
    /// then each module's B on its slice of z.
    public func deltas(layer: Int, modules: [ProjectionModule], rows: UnsafePointer<Float>, count: Int,
                       into outputs: [UnsafeMutablePointer<Float>]) {
        let present = modules.filter { adapts(layer: layer, module: $0) }
        guard let group = stacked[layer].first(where: { $0.modules == present }) else {
            for (module, output) in zip(modules, outputs) { delta(layer: layer, module: module, rows: rows, count: count, into: output) }
            return
        }
        let total = group.a.rows
        withScratch(count: count * total) { z in
            linearForward(z, rows, group.a, bias: nil, tokens: count)
            for (module, output) in zip(modules, outputs) {
                guard let lora = weights(layer: layer, module: module), let offset = group.offset(of: module) else { continue }
                withScratch(count: count * lora.rank) { slice in
                    for t in 0..<count {
                        for j in 0..<lora.rank { slice[t * lora.rank + j] = z[t * total + offset + j] * lora.scale }
                    }
                    linearForward(output, slice, lora.b, bias: nil, tokens: count)
                }
            }
        }
    }
}

/// The A matrices of a group of modules sharing an input, stacked row-wise in f32.
private struct StackedA {
    let modules: [ProjectionModule]
    let offsets: [Int]
    let a: WeightMatrix

    /// nil unless at least two modules of the group have weights (one needs no stacking).
    init?(_ modules: [ProjectionModule], _ layer: [LoRAWeights?]) {
        let pairs = modules.compactMap { layer[$0.rawValue] }
        guard pairs.count >= 2, let cols = pairs.first?.a.cols else { return nil }
        var values: [Float] = []
        var offsets: [Int] = []
        for pair in pairs {
            offsets.append(values.count / cols)
            values += pair.a.floats()
        }
        guard let a = try? WeightMatrix(rows: values.count / cols, cols: cols, values: values) else { return nil }
        self.modules = modules
        self.offsets = offsets
        self.a = a
    }

    func offset(of module: ProjectionModule) -> Int? {
        modules.firstIndex(of: module).map { offsets[$0] }
    }
}

/// One (layer, module) pair: delta(u) = scale * B (A u), A: [rank, in], B: [out, rank].
public struct LoRAWeights: Sendable {
    public let a: WeightMatrix
    public let b: WeightMatrix
    public let scale: Float

    public var rank: Int { a.rows }

    /// Scale of a LoRA with `alpha` and `rank`: alpha / r, or alpha / sqrt(r) with rank-stabilised LoRA.
    static func scale(alpha: Double, rank: Int, rsLoRA: Bool) -> Float {
        Float(rsLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank))
    }
}

/// LoRA delta of a batch of rows, low-rank: B A is never formed.
///   z = u A^T: [n, r], delta = scale * z B^T: [n, out]      u: [n, in]
func loraDeltaForward(_ delta: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, _ lora: LoRAWeights, count n: Int) {
    withScratch(count: n * lora.rank) { z in
        linearForward(z, u, lora.a, bias: nil, tokens: n)
        for i in 0..<(n * lora.rank) { z[i] *= lora.scale }
        linearForward(delta, z, lora.b, bias: nil, tokens: n)
    }
}

/// Collects an expert's pairs, checking each against the model's shapes as it arrives.
struct LoRAExpertBuilder {
    let config: ModelConfig
    let source: String
    private var slots: [[LoRAWeights?]]

    init(config: ModelConfig, source: String) {
        self.config = config
        self.source = source
        slots = Array(repeating: Array(repeating: nil, count: ProjectionModule.allCases.count), count: config.layerCount)
    }

    /// `a` must be [rank, in] and `b` [out, rank] for `module`; `what` names the pair in messages.
    mutating func add(layer: Int, module: ProjectionModule, a: WeightMatrix, b: WeightMatrix, scale: Float,
                      what: String) throws {
        guard (0..<config.layerCount).contains(layer) else {
            throw LoRAMixerError.shape("\(source): \(what): layer \(layer) does not exist (the model has \(config.layerCount) layers)")
        }
        _ = try config.check(module, "\(source): \(what):")
        guard slots[layer][module.rawValue] == nil else {
            throw LoRAMixerError.invalidArgument("\(source): \(what): layer \(layer) \(module.name) is given twice")
        }
        guard scale.isFinite else {
            throw LoRAMixerError.invalidArgument("\(source): \(what): scale \(scale) is not finite")
        }
        let (inFeatures, outFeatures) = config.shape(of: module)
        let rank = a.rows
        guard rank > 0, a.cols == inFeatures else {
            throw LoRAMixerError.shape("\(source): \(what): lora_A is [\(a.rows), \(a.cols)], expected [r, \(inFeatures)] for \(module.name)")
        }
        guard b.rows == outFeatures, b.cols == rank else {
            throw LoRAMixerError.shape("\(source): \(what): lora_B is [\(b.rows), \(b.cols)], expected [\(outFeatures), \(rank)] for \(module.name)")
        }
        slots[layer][module.rawValue] = LoRAWeights(a: a, b: b, scale: scale)
    }

    func build(name: String) throws -> LoRAExpert {
        guard slots.contains(where: { $0.contains { $0 != nil } }) else {
            throw LoRAMixerError.invalidArgument("\(source): expert '\(name)' has no LoRA tensors")
        }
        return LoRAExpert(name: name, source: source, slots: slots)
    }
}
