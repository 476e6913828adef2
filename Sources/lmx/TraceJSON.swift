import LoRAMixer

/// The routing trace as JSON: `{"experts": [names], "layers": L, "tokens": [{"position": i,
/// "token": id, "layers": [[{"expert": name, "gate": g}, ...], ...]}, ...]}`. With the model's
/// tokenizer each token also has `"piece"` (its text) and, when that is not whole UTF-8 (a
/// character split between tokens), `"bytes"`.
enum TraceJSON {
    static func render(_ trace: RoutingTrace, expertNames: [String], tokenizer: Tokenizer? = nil) -> JSONValue {
        var tokens: [JSONValue] = []
        tokens.reserveCapacity(trace.tokens.count)
        for (position, token) in trace.tokens.enumerated() {
            let layers: [JSONValue] = (0..<trace.layers).map { layer in
                .array(trace.entry(token: position, layer: layer).map { applied in
                    let name = expertNames.indices.contains(applied.expert) ? expertNames[applied.expert] : "#\(applied.expert)"
                    return .object(["expert": .string(name), "gate": jsonNumber(applied.gate)])
                })
            }
            var object: JSONObject = ["position": JSONValue(position), "token": JSONValue(Int(token))]
            if let tokenizer, case .object(let piece) = TokenPiece.json(tokenizer, token, full: false) {
                for entry in piece.entries { object[entry.key] = entry.value }
            }
            object["layers"] = .array(layers)
            tokens.append(.object(object))
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
