import LoRAMixer

/// The routing trace as JSON: `{"experts": [names], "layers": L, "tokens": [{"position": i,
/// "token": id, "layers": [[{"expert": name, "gate": g}, ...], ...]}, ...]}`.
enum TraceJSON {
    static func render(_ trace: RoutingTrace, expertNames: [String]) -> JSONValue {
        var tokens: [JSONValue] = []
        tokens.reserveCapacity(trace.tokens.count)
        for (position, token) in trace.tokens.enumerated() {
            let layers: [JSONValue] = (0..<trace.layers).map { layer in
                .array(trace.entry(token: position, layer: layer).map { applied in
                    let name = expertNames.indices.contains(applied.expert) ? expertNames[applied.expert] : "#\(applied.expert)"
                    return .object(["expert": .string(name), "gate": jsonNumber(applied.gate)])
                })
            }
            tokens.append(.object(["position": JSONValue(position), "token": JSONValue(Int(token)), "layers": .array(layers)]))
        }
        return .object([
            "experts": .array(expertNames.map(JSONValue.string)),
            "layers": JSONValue(trace.layers),
            "tokens": .array(tokens),
        ])
    }
}

/// A float as the shortest JSON number that reads back to it; null for NaN or infinity.
func jsonNumber(_ value: Float) -> JSONValue {
    value.isFinite ? .number(value.description) : .null
}
