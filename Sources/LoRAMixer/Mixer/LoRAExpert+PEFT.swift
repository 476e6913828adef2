import Glibc

extension LoRAExpert {
    /// Loads a PEFT LoRA folder (`adapter_config.json` + `adapter_model.safetensors`) for `config`,
    /// checking every tensor against the model's shapes.
    public convenience init(peftDirectory directory: String, name: String, config: ModelConfig) throws {
        try SystemFiles.requireFolder(directory, "PEFT adapter folder")
        let configPath = SystemFiles.join(directory, "adapter_config.json")
        let weightsPath = SystemFiles.join(directory, "adapter_model.safetensors")
        guard SystemFiles.exists(configPath) else {
            throw LoRAMixerError.io("\(directory): no adapter_config.json (expected a PEFT LoRA folder)")
        }
        guard SystemFiles.exists(weightsPath) else {
            let hasBin = SystemFiles.exists(SystemFiles.join(directory, "adapter_model.bin"))
            throw LoRAMixerError.io("\(directory): no adapter_model.safetensors"
                + (hasBin ? " (adapter_model.bin is a pickle; convert it to safetensors)" : ""))
        }
        let adapterConfig = try PEFTAdapterConfig(contentsOf: configPath)
        try adapterConfig.checkSupported()
        let file = try SafeTensorsFile(path: weightsPath, mode: .copied)

        var pairs: [PEFTTensorKey.Slot: (a: TensorView?, b: TensorView?)] = [:]
        for tensorName in file.tensorNames {
            let key = try PEFTTensorKey(tensorName: tensorName, source: weightsPath, config: config)
            let view = try file.tensor(tensorName)
            if key.isA { pairs[key.slot, default: (nil, nil)].a = view } else { pairs[key.slot, default: (nil, nil)].b = view }
        }

        var builder = LoRAExpertBuilder(config: config, source: directory)
        for (slot, pair) in pairs.sorted(by: { ($0.key.layer, $0.key.module) < ($1.key.layer, $1.key.module) }) {
            let what = "layer \(slot.layer) \(slot.module.name)"
            guard let a = pair.a, let b = pair.b else {
                throw LoRAMixerError.format("\(weightsPath): \(what) has lora_\(pair.a == nil ? "A" : "B") but no lora_\(pair.a == nil ? "B" : "A")")
            }
            let (inFeatures, outFeatures) = config.shape(of: slot.module)
            guard a.shape.count == 2, a.shape[1] == inFeatures, a.shape[0] > 0 else {
                throw LoRAMixerError.shape("\(weightsPath): tensor '\(a.name)' has shape \(a.shape), expected [r, \(inFeatures)] for \(slot.module.name) of this model")
            }
            let rank = a.shape[0]
            let moduleKey = config.modulePath(layer: slot.layer, module: slot.module)
            let expectedRank = try adapterConfig.rank(for: moduleKey)
            guard rank == expectedRank else {
                throw LoRAMixerError.shape("\(weightsPath): tensor '\(a.name)' has rank \(rank), but adapter_config.json gives r = \(expectedRank) for \(moduleKey)")
            }
            try builder.add(layer: slot.layer, module: slot.module,
                            a: WeightMatrix(a, rows: rank, cols: inFeatures, source: weightsPath),
                            b: WeightMatrix(b, rows: outFeatures, cols: rank, source: weightsPath),
                            scale: adapterConfig.scale(for: moduleKey, rank: rank), what: what)
        }
        try self.init(builder: builder, name: name)
    }

    convenience init(builder: LoRAExpertBuilder, name: String) throws {
        let expert = try builder.build(name: name)
        self.init(name: name, source: expert.source, slots: expert.slots)
    }
}

/// `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight` (llama family) or
/// `base_model.model.backbone.layers.{i}.mixer.{module}.lora_{A|B}.weight` (Mamba), parsed.
struct PEFTTensorKey {
    struct Slot: Hashable {
        let layer: Int
        let module: ProjectionModule
    }

    let slot: Slot
    let isA: Bool

    init(tensorName: String, source: String, config: ModelConfig) throws {
        let parts = tensorName.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let root = config.family.isStateSpace ? "backbone" : "model"
        let pattern = config.family.isStateSpace
            ? "base_model.model.backbone.layers.{i}.mixer.{module}.lora_{A|B}.weight"
            : "base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight"
        // base_model . model . root . layers . i . block . module . lora_X . weight
        guard parts.count == 9, parts[0] == "base_model", parts[1] == "model", parts[2] == root, parts[3] == "layers",
              let layer = Int(parts[4]), layer >= 0, parts[8] == "weight", parts[7] == "lora_A" || parts[7] == "lora_B"
        else {
            if tensorName.contains("lora_magnitude_vector") {
                throw LoRAMixerError.format("\(source): tensor '\(tensorName)' belongs to a DoRA adapter, which loramixer does not support")
            }
            throw LoRAMixerError.format("\(source): tensor '\(tensorName)' is not a LoRA A/B tensor of a \(config.architecture) layer projection (expected \(pattern))")
        }
        guard let module = ProjectionModule(name: parts[6]), module.block == parts[5], config.modules.contains(module) else {
            throw LoRAMixerError.format("\(source): tensor '\(tensorName)' adapts '\(parts[5]).\(parts[6])', which loramixer does not route in a \(config.architecture) model (supported: \(config.moduleNames))")
        }
        slot = Slot(layer: layer, module: module)
        isA = parts[7] == "lora_A"
    }
}
