internal import CLoRAMixer

extension Router {
    /// A router from an `lmx_router_desc` (a plugin's memory), validated like a router file.
    init(desc rawDesc: UnsafePointer<lmx_router_desc>, config: ModelConfig, source: String) throws {
        let desc = try CInterop.load(lmx_router_desc.self, from: rawDesc, minimum: CInterop.routerDescMinimum, "lmx_router_desc")
        let (e, d) = (desc.n_experts, config.hiddenSize)
        guard (1...(1 << 16)).contains(e), let names = desc.experts else {
            throw LoRAMixerError.invalidArgument("\(source): experts must be non-NULL with n_experts 1...65536, got \(UInt(bitPattern: e))")
        }
        let expertNames = try (0..<e).map { i in
            guard let name = names[i].flatMap({ String(validatingCString: $0) }), !name.isEmpty else {
                throw LoRAMixerError.invalidArgument("\(source): experts[\(i)] is NULL, empty or not UTF-8")
            }
            return name
        }
        guard Set(expertNames).count == e else {
            throw LoRAMixerError.invalidArgument("\(source): experts lists a name twice: \(expertNames)")
        }
        guard Int(desc.n_layers) == config.layerCount, Int(desc.d_model) == d else {
            throw LoRAMixerError.shape("\(source): router is for \(desc.n_layers) layers x d_model \(desc.d_model), the model has \(config.layerCount) x \(d)")
        }
        guard (1...e).contains(Int(desc.top_k)) else {
            throw LoRAMixerError.invalidArgument("\(source): top_k \(desc.top_k) must be in 1...\(e)")
        }
        guard desc.temperature.isFinite, desc.temperature > 0 else {
            throw LoRAMixerError.invalidArgument("\(source): temperature \(desc.temperature) must be finite and > 0")
        }
        guard let weights = desc.weights else { throw LoRAMixerError.invalidArgument("\(source): 'weights' must not be NULL") }
        func matrix(_ pointers: UnsafePointer<UnsafePointer<Float>?>, _ layer: Int, _ what: String, count: Int) throws -> [Float] {
            guard let pointer = pointers[layer] else {
                throw LoRAMixerError.invalidArgument("\(source): \(what)[\(layer)] must not be NULL")
            }
            let values = Array(UnsafeBufferPointer(start: pointer, count: count))
            guard values.allSatisfy(\.isFinite) else { throw LoRAMixerError.invalidArgument("\(source): \(what)[\(layer)] has NaN or infinity") }
            return values
        }
        let layers = try (0..<config.layerCount).map { l in
            RouterLayer(weight: try matrix(weights, l, "weights", count: e * d),
                        bias: try desc.biases.flatMap { $0[l] == nil ? nil : try matrix($0, l, "biases", count: e) },
                        contextWeight: try desc.context_weights.map { try matrix($0, l, "context_weights", count: e * d) })
        }
        self.init(source: source, expertNames: expertNames, topK: Int(desc.top_k), temperature: desc.temperature,
                  input: desc.context_weights == nil ? .token : .context, layers: layers)
    }
}
