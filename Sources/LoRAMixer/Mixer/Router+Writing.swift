extension Router {
    /// Writes a router file (docs/ARCHITECTURE.md#router-file), atomically: rows in `expertNames` order, f32.
    public func write(to path: String) throws {
        let (e, d) = (expertNames.count, layers.first.map { $0.weight.count / max(expertNames.count, 1) } ?? 0)
        var tensors: [(name: String, shape: [Int], data: [Float])] = []
        for (l, layer) in layers.enumerated() {
            tensors.append(("router.layers.\(l).weight", [e, d], layer.weight))
            if let bias = layer.bias { tensors.append(("router.layers.\(l).bias", [e], bias)) }
            if let context = layer.contextWeight { tensors.append(("router.layers.\(l).context_weight", [e, d], context)) }
        }
        let metadata = [
            "format": "loramixer.router", "version": "1", "scope": "layer", "input": input.rawValue,
            "experts": JSONValue.array(expertNames.map(JSONValue.string)).serialized(),
            "top_k": String(topK), "temperature": String(temperature),
        ]
        try SafeTensorsWriter.write(tensors, metadata: metadata, to: path)
    }
}
