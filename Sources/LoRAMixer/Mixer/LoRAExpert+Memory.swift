extension LoRAExpert {
    /// One (layer, module) pair handed over from memory: `a` [rank, in], `b` [out, rank].
    public struct MemoryTensor: Sendable {
        public var layer: Int
        public var module: ProjectionModule
        public var a: WeightMatrix
        public var b: WeightMatrix

        public init(layer: Int, module: ProjectionModule, a: WeightMatrix, b: WeightMatrix) {
            self.layer = layer
            self.module = module
            self.a = a
            self.b = b
        }
    }

    /// An expert from tensors in memory, all of one `alpha` (scale alpha / rank, or alpha /
    /// sqrt(rank) with rsLoRA), checked against `config`.
    public convenience init(name: String, alpha: Double, useRSLoRA: Bool, tensors: [MemoryTensor], config: ModelConfig) throws {
        guard alpha.isFinite else { throw LoRAMixerError.invalidArgument("expert '\(name)': alpha \(alpha) is not finite") }
        var builder = LoRAExpertBuilder(config: config, source: "expert '\(name)' (memory)")
        for (index, tensor) in tensors.enumerated() {
            try builder.add(layer: tensor.layer, module: tensor.module, a: tensor.a, b: tensor.b,
                            scale: LoRAWeights.scale(alpha: alpha, rank: tensor.a.rows, rsLoRA: useRSLoRA),
                            what: "tensors[\(index)] (layer \(tensor.layer) \(tensor.module.name))")
        }
        try self.init(builder: builder, name: name)
    }
}
