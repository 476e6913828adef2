import Glibc

extension LoRAExpert {
    /// Writes the expert as a PEFT LoRA folder that PEFT and `LoRAExpert(peftDirectory:)` load:
    /// `adapter_model.safetensors` (f32, PEFT's tensor names) and `adapter_config.json`, each file
    /// atomically. Per-module ranks and scales are kept exactly: `r` and `lora_alpha` are the first
    /// slot's, other modules get `rank_pattern` / `alpha_pattern` entries (alpha = scale x r), and
    /// `target_modules` names exactly the adapted modules.
    public func writePEFT(to directory: String, baseModel: String, config: ModelConfig) throws {
        try AtomicFile.createDirectories(directory)
        var tensors: [(name: String, shape: [Int], data: [Float])] = []
        var keys: [(key: String, lora: LoRAWeights)] = []
        for (layer, modules) in slots.enumerated() {
            for (index, slot) in modules.enumerated() {
                guard let lora = slot, let module = ProjectionModule(rawValue: index) else { continue }
                let key = config.modulePath(layer: layer, module: module)
                keys.append((key, lora))
                tensors.append(("base_model.model.\(key).lora_A.weight", [lora.a.rows, lora.a.cols], lora.a.floats()))
                tensors.append(("base_model.model.\(key).lora_B.weight", [lora.b.rows, lora.b.cols], lora.b.floats()))
            }
        }
        guard let first = keys.first?.lora else { throw LoRAMixerError.state("expert '\(name)' has no LoRA tensors to write") }
        func alpha(_ lora: LoRAWeights) -> Double { Double(lora.scale) * Double(lora.rank) }
        func escaped(_ key: String) -> String { key.replacing(".", with: "\\.") }
        var rankPattern = JSONObject(), alphaPattern = JSONObject()
        for (key, lora) in keys {
            if lora.rank != first.rank { rankPattern[escaped(key)] = JSONValue(lora.rank) }
            if alpha(lora) != alpha(first) { alphaPattern[escaped(key)] = JSONValue(alpha(lora)) }
        }
        let uniformLayers = Set(keys.map { $0.key.split(separator: ".")[2] }).count == slots.count
            && Set(slots.map { $0.map { $0 != nil } }).count == 1
        let targets: JSONValue = uniformLayers
            ? .array(targetModules.map { .string($0.name) })
            : .string("(" + keys.map { escaped($0.key) }.joined(separator: "|") + ")")
        var config = JSONObject()
        config["alpha_pattern"] = .object(alphaPattern)
        config["base_model_name_or_path"] = .string(baseModel)
        config["bias"] = .string("none")
        config["fan_in_fan_out"] = .bool(false)
        config["inference_mode"] = .bool(true)
        config["init_lora_weights"] = .bool(true)
        config["lora_alpha"] = JSONValue(alpha(first))
        config["lora_dropout"] = JSONValue(0.0)
        config["modules_to_save"] = .null
        config["peft_type"] = .string("LORA")
        config["r"] = JSONValue(first.rank)
        config["rank_pattern"] = .object(rankPattern)
        config["target_modules"] = targets
        config["task_type"] = .string("CAUSAL_LM")
        config["use_dora"] = .bool(false)
        config["use_rslora"] = .bool(false)
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"],
                                    to: SystemFiles.join(directory, "adapter_model.safetensors"))
        try AtomicFile.write(JSONValue.object(config).serialized() + "\n",
                             to: SystemFiles.join(directory, "adapter_config.json"))
    }

    /// A new expert for training, initialised as PEFT does by default: A ~ U(-1/sqrt(in), 1/sqrt(in))
    /// (kaiming-uniform with a = sqrt(5)), B = 0, so it starts as the identity. Scale alpha / rank.
    public convenience init(untrainedFor config: ModelConfig, name: String, rank: Int, alpha: Double,
                            modules: [ProjectionModule], layers: [Int]? = nil, seed: UInt64) throws {
        guard (1...4096).contains(rank) else { throw LoRAMixerError.invalidArgument("rank \(rank) must be in 1...4096") }
        guard alpha.isFinite, alpha > 0 else { throw LoRAMixerError.invalidArgument("alpha \(alpha) must be > 0") }
        guard !modules.isEmpty else { throw LoRAMixerError.invalidArgument("a new expert needs at least one target module") }
        let layers = layers ?? Array(0..<config.layerCount)
        var generator = SplitMix64(seed: seed)
        var builder = LoRAExpertBuilder(config: config, source: "new expert '\(name)'")
        for layer in layers {
            for module in Set(modules).sorted() {
                let (inFeatures, outFeatures) = config.shape(of: module)
                let bound = 1 / Float(inFeatures).squareRoot()
                let a = (0..<(rank * inFeatures)).map { _ in (2 * generator.nextUniform() - 1) * bound }
                try builder.add(layer: layer, module: module, a: WeightMatrix(rows: rank, cols: inFeatures, values: a),
                                b: WeightMatrix(rows: outFeatures, cols: rank, values: Array(repeating: 0, count: outFeatures * rank)),
                                scale: LoRAWeights.scale(alpha: alpha, rank: rank, rsLoRA: false), what: "layer \(layer) \(module.name)")
            }
        }
        try self.init(builder: builder, name: name)
    }
}
