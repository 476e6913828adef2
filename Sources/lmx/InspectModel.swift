import LoRAMixer

extension InspectCommand {
    /// A Hugging Face model folder: the config as loramixer reads it, then the weight tensors.
    static func modelReport(_ path: String, tensorTable: Bool) throws -> InspectReport {
        let config = try ModelConfig(contentsOf: join(path, "config.json"))
        let weights = try SafeTensorsCollection(directory: path)
        var report = InspectReport(kind: "model", path: path)
        // The family's own fields: its shape after d_model, its extras after the shared ones.
        let shape: [InspectReport.Field], extras: [InspectReport.Field]
        if let ssm = config.stateSpace {
            shape = [.init("d_inner", ssm.innerSize), .init("d_state", ssm.stateSize), .init("d_conv", ssm.convKernel),
                     .init("dt_rank", ssm.timeStepRank)]
            extras = ssm.mixerNormEps.map { [.init("mixer_rms_eps", $0)] } ?? []
        } else {
            shape = [.init("heads", config.headCount), .init("kv_heads", config.kvHeadCount), .init("head_dim", config.headDim),
                     .init("d_ff", config.intermediateSize)]
            extras = [.init("rope_theta", config.rope.theta), ropeScaling(config.rope.scaling), slidingWindows(config.slidingWindows)]
        }
        report.fields([
            .init("architecture", config.architecture),
            .init("family", config.family.rawValue),
            .init("layers", config.layerCount),
            .init("d_model", config.hiddenSize),
        ] + shape + [
            .init("vocab", config.vocabSize),
            .init("max_positions", config.maxPositions),
            .init("rms_norm_eps", config.rmsNormEps),
            .init("tied_embeddings", config.tieWordEmbeddings),
        ] + extras + [
            .init(key: "projections", json: .array(config.modules.map { .string($0.name) }),
                  text: config.modules.map(\.name).joined(separator: ", ")),
            try weightFiles(path),
        ])
        report.tensors(weights.tensorNames.compactMap(weights.info), table: tensorTable)
        return report
    }

    private static func ropeScaling(_ scaling: RoPEConfig.Scaling) -> InspectReport.Field {
        switch scaling {
        case .none:
            return .init(key: "rope_scaling", json: .null, text: "none")
        case .linear(let factor):
            return .init(key: "rope_scaling", json: .object(["type": .string("linear"), "factor": JSONValue(factor)]),
                         text: "linear, factor \(formatNumber(factor))")
        case .llama3(let factor, let low, let high, let original):
            return .init(
                key: "rope_scaling",
                json: .object(["type": .string("llama3"), "factor": JSONValue(factor), "low_freq_factor": JSONValue(low),
                               "high_freq_factor": JSONValue(high), "original_max_position_embeddings": JSONValue(original)]),
                text: "llama3, factor \(formatNumber(factor)), low_freq_factor \(formatNumber(low)), "
                    + "high_freq_factor \(formatNumber(high)), original_max_position_embeddings \(formatNumber(original))")
        }
    }

    private static func slidingWindows(_ windows: [Int?]) -> InspectReport.Field {
        let json = JSONValue.array(windows.map { $0.map(JSONValue.init) ?? .null })
        let text: String
        if windows.allSatisfy({ $0 == nil }) {
            text = "none (full causal attention)"
        } else if let first = windows.first, let window = first, windows.allSatisfy({ $0 == window }) {
            text = "\(window) positions in every layer"
        } else {
            text = windows.enumerated().map { "layer \($0.offset): \($0.element.map(String.init) ?? "full")" }.joined(separator: ", ")
        }
        return .init(key: "sliding_windows", json: json, text: text)
    }

    /// One file, or shards listed by the index.
    private static func weightFiles(_ path: String) throws -> InspectReport.Field {
        let indexPath = join(path, SafeTensorsCollection.indexFileName)
        guard let data = readFile(indexPath) else {
            return .init(key: "weight_files", json: .array([.string(SafeTensorsCollection.singleFileName)]),
                         text: SafeTensorsCollection.singleFileName)
        }
        let index = try JSONParser.parse(data, context: indexPath)
        var shards: [String] = []
        for entry in index.object?["weight_map"]?.object?.entries ?? [] {
            if let shard = entry.value.string, !shards.contains(shard) { shards.append(shard) }
        }
        shards.sort()
        return .init(key: "weight_files", json: .array(shards.map(JSONValue.string)),
                     text: "\(shards.count) shards listed by \(SafeTensorsCollection.indexFileName)\n" + shards.joined(separator: "\n"))
    }
}
