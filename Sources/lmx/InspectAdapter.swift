import LoRAMixer

extension InspectCommand {
    /// A PEFT LoRA folder: adapter_config.json as written, then what the tensors adapt, with the
    /// rank, alpha and scale each module gets (PEFT's rank/alpha pattern rules), then the tensors.
    static func adapterReport(_ path: String, tensorTable: Bool) throws -> InspectReport {
        let configPath = join(path, "adapter_config.json")
        guard let data = readFile(configPath) else {
            throw CLIError("\(configPath): cannot read file")
        }
        let json = try JSONParser.parse(data, context: configPath)
        guard let config = json.object else { throw CLIError("\(configPath): top level is not a JSON object") }
        let weightsPath = join(path, "adapter_model.safetensors")
        guard fileKind(weightsPath) != nil else {
            throw CLIError("\(path): no adapter_model.safetensors")
        }
        let file = try SafeTensorsFile(path: weightsPath)
        let infos = file.tensorNames.compactMap(file.info)

        var report = InspectReport(kind: "PEFT adapter", path: path)
        let peft = try PEFTAdapterConfig(json: json, source: configPath)
        let rsLoRA = peft.useRSLoRA
        report.fields([
            .init("peft_type", json: config["peft_type"] ?? .null),
            .init("base_model", json: config["base_model_name_or_path"] ?? .null),
            .init("r", json: config["r"] ?? .null),
            .init("lora_alpha", json: config["lora_alpha"] ?? .null),
            .init("use_rslora", rsLoRA),
            .init("rank_pattern", json: config["rank_pattern"] ?? .null),
            .init("alpha_pattern", json: config["alpha_pattern"] ?? .null),
            .init("target_modules", json: config["target_modules"] ?? .null),
            .init(key: "layers_to_transform", json: config["layers_to_transform"] ?? .null,
                  text: config["layers_to_transform"].map { $0 == .null ? "all" : describe($0) } ?? "all"),
            .init("loramixer_can_load", Result { try peft.checkSupported() }.errorMessage ?? "yes"),
        ])

        var modules: [(name: String, layers: [Int], ranks: [Int], alphas: [Double], scales: [Float])] = []
        for info in infos {
            guard let key = LoRATensorName(info.name), key.isA, let tensorRank = info.shape.first else { continue }
            let moduleAlpha = try peft.alpha(for: key.moduleKey)
            let scale = try peft.scale(for: key.moduleKey, rank: tensorRank)
            if !modules.contains(where: { $0.name == key.module }) { modules.append((key.module, [], [], [], [])) }
            guard let index = modules.firstIndex(where: { $0.name == key.module }) else { continue }
            if let layer = key.layer, !modules[index].layers.contains(layer) { modules[index].layers.append(layer) }
            if !modules[index].ranks.contains(tensorRank) { modules[index].ranks.append(tensorRank) }
            if !modules[index].alphas.contains(moduleAlpha) { modules[index].alphas.append(moduleAlpha) }
            if !modules[index].scales.contains(scale) { modules[index].scales.append(scale) }
        }
        let order = { (name: String) in ProjectionModule(name: name)?.rawValue ?? Int.max }
        modules.sort { (order($0.name), $0.name) < (order($1.name), $1.name) }
        let layers = Set(modules.flatMap(\.layers)).sorted()
        report.fields([
            .init(key: "adapted_layers", json: .array(layers.map(JSONValue.init)),
                  text: layers.isEmpty ? "none" : layers.map(String.init).joined(separator: ", ")),
            .init(key: "adapted_modules", json: .array(modules.map { .string($0.name) }),
                  text: modules.isEmpty ? "none" : modules.map(\.name).joined(separator: ", ")),
        ])
        report.table(InspectReport.Table(
            key: "modules", title: "modules (rank, alpha and scale = alpha/\(rsLoRA ? "sqrt(r)" : "r") from the tensors and patterns)",
            headers: ["module", "layers", "rank", "alpha", "scale"], rightAligned: [],
            rows: modules.map { module in
                [module.name, module.layers.sorted().map(String.init).joined(separator: ","),
                 module.ranks.map(String.init).joined(separator: "/"),
                 module.alphas.map { formatNumber($0) }.joined(separator: "/"),
                 module.scales.map { formatNumber($0) }.joined(separator: "/")]
            },
            json: .array(modules.map { module in
                .object(["module": .string(module.name), "layers": .array(module.layers.sorted().map(JSONValue.init)),
                         "ranks": .array(module.ranks.map(JSONValue.init)), "alphas": .array(module.alphas.map(JSONValue.init)),
                         "scales": .array(module.scales.map(jsonNumber))])
            })))
        report.tensors(infos, table: tensorTable)
        return report
    }
}

/// `base_model.model.<module path>.lora_{A|B}[.<adapter>].weight`, read leniently for display.
struct LoRATensorName {
    /// The module path PEFT patterns are matched against, e.g. `model.layers.0.self_attn.q_proj`.
    let moduleKey: String
    /// The last component of the module path, e.g. `q_proj`.
    let module: String
    let layer: Int?
    let isA: Bool

    init?(_ name: String) {
        var parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.last == "weight" else { return nil }
        guard let loraIndex = parts.lastIndex(where: { $0 == "lora_A" || $0 == "lora_B" }), loraIndex > 0 else { return nil }
        isA = parts[loraIndex] == "lora_A"
        parts.removeSubrange(loraIndex...)
        if parts.starts(with: ["base_model", "model"]) { parts.removeFirst(2) }
        guard let last = parts.last else { return nil }
        module = last
        moduleKey = parts.joined(separator: ".")
        layer = parts.firstIndex(of: "layers").flatMap { $0 + 1 < parts.count ? Int(parts[$0 + 1]) : nil }
    }
}

private extension Result where Success == Void, Failure == Error {
    /// The message of a failed check, nil when it passed.
    var errorMessage: String? {
        guard case .failure(let error) = self else { return nil }
        return (error as? LoRAMixerError)?.message ?? "\(error)"
    }
}
