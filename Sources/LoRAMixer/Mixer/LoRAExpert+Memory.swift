extension LoRAExpert {
    /// One (layer, module) pair handed over from memory, already widened to f32.
    public struct MemoryTensor: Sendable {
        public var layer: Int
        public var module: ProjectionModule
        public var a: [Float]
        public var b: [Float]

        public init(layer: Int, module: ProjectionModule, a: [Float], b: [Float]) {
            self.layer = layer
            self.module = module
            self.a = a
            self.b = b
        }
    }

    /// An expert from tensors in memory, all of one `rank` and `alpha`, checked against `config`.
    public convenience init(name: String, rank: Int, alpha: Double, useRSLoRA: Bool, tensors: [MemoryTensor],
                            config: ModelConfig) throws {
        guard rank > 0 else { throw LoRAMixerError.invalidArgument("expert '\(name)': rank must be positive (found \(rank))") }
        guard alpha.isFinite else { throw LoRAMixerError.invalidArgument("expert '\(name)': alpha \(alpha) is not finite") }
        var builder = LoRAExpertBuilder(config: config, source: "expert '\(name)' (memory)")
        let scale = LoRAWeights.scale(alpha: alpha, rank: rank, rsLoRA: useRSLoRA)
        for (index, tensor) in tensors.enumerated() {
            try builder.add(layer: tensor.layer, module: tensor.module, rank: rank, scale: scale, a: tensor.a, b: tensor.b,
                            what: "tensors[\(index)] (layer \(tensor.layer) \(tensor.module.name))")
        }
        try self.init(builder: builder, name: name)
    }
}
