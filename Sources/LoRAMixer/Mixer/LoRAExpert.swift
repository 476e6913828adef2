/// One LoRA expert: low-rank `A`/`B` pairs for some (layer, module) slots of a model, copied into
/// memory the expert owns. Immutable; shared by every session that uses it.
public final class LoRAExpert: @unchecked Sendable {
    public let name: String
    /// Where it came from (a folder, or "memory"), for messages.
    public let source: String
    /// `[layer][module.rawValue]`; nil where the expert has no tensors.
    let slots: [[LoRAWeights?]]

    init(name: String, source: String, slots: [[LoRAWeights?]]) {
        self.name = name
        self.source = source
        self.slots = slots
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
        slots.joined().compactMap { $0 }.reduce(0) { $0 + $1.a.count + $1.b.count }
    }

    func weights(layer: Int, module: ProjectionModule) -> LoRAWeights? {
        slots[layer][module.rawValue]
    }
}

/// One (layer, module) pair: delta(u) = scale * B (A u), A: [rank, in], B: [out, rank], f32.
struct LoRAWeights: Sendable {
    let rank: Int
    let inFeatures: Int
    let outFeatures: Int
    let scale: Float
    let a: [Float]
    let b: [Float]

    /// Scale of a LoRA with `alpha` and `rank`: alpha / r, or alpha / sqrt(r) with rank-stabilised LoRA.
    static func scale(alpha: Double, rank: Int, rsLoRA: Bool) -> Float {
        Float(rsLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank))
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

    /// `a` is [rank, in] and `b` [out, rank] for `module` of `layer`; `what` names the tensors.
    mutating func add(layer: Int, module: ProjectionModule, rank: Int, scale: Float, a: [Float], b: [Float],
                      what: String) throws {
        guard (0..<config.layerCount).contains(layer) else {
            throw LoRAMixerError.shape("\(source): \(what): layer \(layer) does not exist (the model has \(config.layerCount) layers)")
        }
        guard slots[layer][module.rawValue] == nil else {
            throw LoRAMixerError.invalidArgument("\(source): \(what): layer \(layer) \(module.name) is given twice")
        }
        guard rank > 0 else {
            throw LoRAMixerError.shape("\(source): \(what): rank must be positive")
        }
        guard scale.isFinite else {
            throw LoRAMixerError.invalidArgument("\(source): \(what): scale \(scale) is not finite")
        }
        let (inFeatures, outFeatures) = config.shape(of: module)
        guard a.count == rank * inFeatures else {
            throw LoRAMixerError.shape("\(source): \(what): lora_A has \(a.count) values, expected [\(rank), \(inFeatures)] for \(module.name)")
        }
        guard b.count == outFeatures * rank else {
            throw LoRAMixerError.shape("\(source): \(what): lora_B has \(b.count) values, expected [\(outFeatures), \(rank)] for \(module.name)")
        }
        slots[layer][module.rawValue] = LoRAWeights(
            rank: rank, inFeatures: inFeatures, outFeatures: outFeatures, scale: scale, a: a, b: b)
    }

    func build(name: String) throws -> LoRAExpert {
        guard slots.contains(where: { $0.contains { $0 != nil } }) else {
            throw LoRAMixerError.invalidArgument("\(source): expert '\(name)' has no LoRA tensors")
        }
        return LoRAExpert(name: name, source: source, slots: slots)
    }
}
