import LoRAMixer

extension InspectCommand {
    /// A loramixer router file: its metadata (docs/ARCHITECTURE.md#router-file), then its tensors per layer.
    static func routerReport(_ file: SafeTensorsFile, tensorTable: Bool) -> InspectReport {
        let metadata = file.metadata
        var report = InspectReport(kind: "router", path: file.path)
        let experts = metadata["experts"].flatMap { try? JSONParser.parse($0, context: "experts") }
        let standard = ["format", "version", "experts", "top_k", "temperature", "scope", "input"]
        /// Metadata are strings; numbers among them are reported as JSON numbers.
        func value(_ key: String, default fallback: String? = nil) -> InspectReport.Field {
            if let text = metadata[key] {
                if key == "top_k", let number = Int(text) { return .init(key, number) }
                if key == "temperature", let number = Double(text), number.isFinite {
                    return .init(key: key, json: JSONValue(number), text: text)
                }
                return .init(key, text)
            }
            if let fallback { return .init(key: key, json: .string(fallback), text: "\(fallback) (default)") }
            return .init(key: key, json: .null, text: "missing")
        }
        report.fields([
            value("format"),
            value("version"),
            experts?.array != nil
                ? .init(key: "experts", json: experts ?? .null, text: describe(experts ?? .null))
                : value("experts"),
            value("top_k"),
            value("temperature", default: "1.0"),
            value("scope", default: "layer"),
            value("input", default: "token"),
        ] + metadata.keys.filter { !standard.contains($0) }.sorted().map { .init("metadata.\($0)", metadata[$0] ?? "") })

        // router.layers.{i}.{weight|bias|context_weight} (or {module}.weight for scope "projection")
        var layers: [Int: [(String, TensorInfo)]] = [:]
        for name in file.tensorNames {
            let parts = name.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, parts[0] == "router", parts[1] == "layers", let layer = Int(parts[2]),
                  let info = file.info(name) else { continue }
            layers[layer, default: []].append((String(parts[3]), info))
        }
        let indices = layers.keys.sorted()
        let dModel = layers.values.joined().first { $0.0 == "weight" }.flatMap { $0.1.shape.last }
        report.fields([
            .init("layers", indices.count),
            .init(key: "d_model", json: dModel.map(JSONValue.init) ?? .null, text: dModel.map(String.init) ?? "unknown"),
        ])
        report.table(InspectReport.Table(
            key: "layer_tensors", title: "per-layer tensors", headers: ["layer", "tensors"], rightAligned: [0],
            rows: indices.map { layer in
                [String(layer), (layers[layer] ?? []).map { "\($0.0) \($0.1.dtype.rawValue) \(shapeText($0.1.shape))" }.joined(separator: ", ")]
            },
            json: .array(indices.map { layer in
                .object(["layer": JSONValue(layer),
                         "tensors": .object(JSONObject((layers[layer] ?? []).map { ($0.0, JSONValue.array($0.1.shape.map(JSONValue.init))) }))])
            })))
        report.tensors(file.tensorNames.compactMap(file.info), table: tensorTable)
        return report
    }

    /// Any other safetensors file: its metadata and tensors.
    static func plainReport(_ file: SafeTensorsFile, tensorTable: Bool) -> InspectReport {
        var report = InspectReport(kind: "safetensors", path: file.path)
        let keys = file.metadata.keys.sorted()
        report.table(InspectReport.Table(
            key: "metadata", title: "metadata (\(keys.count))", headers: ["key", "value"], rightAligned: [],
            rows: keys.map { [$0, file.metadata[$0] ?? ""] },
            json: .object(JSONObject(keys.map { ($0, JSONValue.string(file.metadata[$0] ?? "")) }))))
        report.tensors(file.tensorNames.compactMap(file.info), table: tensorTable)
        return report
    }
}
