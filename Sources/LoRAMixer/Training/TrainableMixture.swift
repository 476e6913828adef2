/// A tensor the trainer holds in f32: a router's or an expert's. The base model is never one.
final class ParameterTensor {
    /// The fixture/report name: `router.layers.{l}.weight|bias|context_weight` or
    /// `experts.{name}.layers.{l}.{module}.lora_A|lora_B`.
    let name: String
    let shape: [Int]
    let values: FloatBuffer
    /// Whether the optimiser updates it (frozen experts in the router regime are not).
    let trainable: Bool
    /// Whether AdamW decays it (matrices do, biases do not).
    let decays: Bool

    init(name: String, shape: [Int], values: [Float], trainable: Bool, decays: Bool) {
        (self.name, self.shape, self.trainable, self.decays) = (name, shape, trainable, decays)
        self.values = FloatBuffer(values)
    }

    var count: Int { values.count }
}

/// The router and experts being trained, as f32 tensors, with the index of each tensor in
/// `parameters` (the optimiser's flat list).
struct TrainableMixture {
    /// One (layer, module) LoRA pair of an expert: delta = scale * B (A u), A: [rank, in], B: [out, rank].
    struct Slot {
        let a: Int, b: Int
        let rank: Int, scale: Float
    }

    /// One layer's router: z = W h (+ W_c c) + b.
    struct RouterLayer {
        let weight: Int, bias: Int
        let context: Int?
    }

    let config: ModelConfig
    let expertNames: [String]
    /// `[expert][layer][module.rawValue]`.
    let slots: [[[Slot?]]]
    /// nil when the run has no router (label routing while training experts only).
    let router: [RouterLayer]?
    let routerInput: Router.Input
    let topK: Int
    let temperature: Float
    let parameters: [ParameterTensor]
    /// Where each expert was loaded from (nil for experts created for training).
    let expertSources: [String]

    /// Takes the mixer's experts (LoRA only: training needs their A and B) and router, or makes a
    /// new router when the run trains one and the mixer has none.
    init(config: ModelConfig, experts: [any Expert], router: Router?, options: TrainingOptions) throws {
        guard !experts.isEmpty else { throw LoRAMixerError.state("the mixer has no experts to train with; add experts first") }
        let loras = try experts.map { expert -> LoRAExpert in
            guard let lora = expert as? LoRAExpert else {
                throw LoRAMixerError.state("expert '\(expert.name)' is a custom expert; training needs LoRA experts (their A and B), loaded from PEFT folders or memory")
            }
            return lora
        }
        let names = loras.map(\.name)
        if let unknown = options.sensitiveExperts.first(where: { !names.contains($0) }) {
            throw LoRAMixerError.notFound("sensitive expert '\(unknown)' is not in the mixer (experts: \(names))")
        }
        var parameters: [ParameterTensor] = []
        func add(_ name: String, _ shape: [Int], _ values: [Float], trainable: Bool, decays: Bool) -> Int {
            parameters.append(ParameterTensor(name: name, shape: shape, values: values, trainable: trainable, decays: decays))
            return parameters.count - 1
        }

        let trainsExperts = options.regime == .joint
        slots = loras.map { expert in
            (0..<config.layerCount).map { layer in
                ProjectionModule.allCases.map { module -> Slot? in
                    guard let lora = expert.weights(layer: layer, module: module) else { return nil }
                    let prefix = "experts.\(expert.name).layers.\(layer).\(module.name)"
                    return Slot(a: add("\(prefix).lora_A", [lora.a.rows, lora.a.cols], lora.a.floats(), trainable: trainsExperts, decays: true),
                                b: add("\(prefix).lora_B", [lora.b.rows, lora.b.cols], lora.b.floats(), trainable: trainsExperts, decays: true),
                                rank: lora.rank, scale: lora.scale)
                }
            }
        }

        let e = loras.count, d = config.hiddenSize
        var routerSource = router
        if routerSource == nil, options.routing != .label || options.regime == .router {
            var generator = SplitMix64(seed: options.seed ^ 0x524F_5554_4552)
            func draw() -> [Float] { (0..<(e * d)).map { _ in 0.02 * generator.nextNormal() } }
            let layers = (0..<config.layerCount).map { _ in
                LoRAMixer.RouterLayer(weight: draw(), bias: Array(repeating: 0, count: e),
                                      contextWeight: options.routerInput == .context ? draw() : nil)
            }
            routerSource = Router(source: "new router", expertNames: names, topK: min(options.topK ?? 2, e),
                                  temperature: options.temperature ?? 1, input: options.routerInput, layers: layers)
        }
        if let routerSource {
            let ordered = try routerSource.ordered(for: names)
            self.router = ordered.layers.enumerated().map { l, layer in
                let prefix = "router.layers.\(l)"
                return RouterLayer(
                    weight: add("\(prefix).weight", [e, d], layer.weight, trainable: true, decays: true),
                    bias: add("\(prefix).bias", [e], layer.bias ?? Array(repeating: 0, count: e), trainable: true, decays: false),
                    context: layer.contextWeight.map { add("\(prefix).context_weight", [e, d], $0, trainable: true, decays: true) })
            }
            routerInput = ordered.input
            topK = options.topK ?? ordered.topK
            temperature = options.temperature ?? ordered.temperature
        } else {
            self.router = nil
            routerInput = .token
            topK = options.topK ?? 1
            temperature = options.temperature ?? 1
        }
        guard topK <= e else { throw LoRAMixerError.invalidArgument("top_k \(topK) is more than the \(e) experts") }
        self.config = config
        expertNames = names
        expertSources = loras.map(\.source)
        self.parameters = parameters
    }

    /// The experts as they are now, for inference (f32).
    func makeExperts() throws -> [LoRAExpert] {
        try expertNames.indices.map { e in
            var builder = LoRAExpertBuilder(config: config, source: expertSources[e])
            for (layer, modules) in slots[e].enumerated() {
                for (index, slot) in modules.enumerated() {
                    guard let slot, let module = ProjectionModule(rawValue: index) else { continue }
                    let (a, b) = (parameters[slot.a], parameters[slot.b])
                    try builder.add(layer: layer, module: module,
                                    a: WeightMatrix(rows: a.shape[0], cols: a.shape[1], values: a.values.array),
                                    b: WeightMatrix(rows: b.shape[0], cols: b.shape[1], values: b.values.array),
                                    scale: slot.scale, what: "layer \(layer) \(module.name)")
                }
            }
            return try LoRAExpert(builder: builder, name: expertNames[e])
        }
    }

    /// The router as it is now, or nil without one.
    func makeRouter(source: String = "trained router") -> Router? {
        guard let router else { return nil }
        let layers = router.map { layer in
            LoRAMixer.RouterLayer(weight: parameters[layer.weight].values.array, bias: parameters[layer.bias].values.array,
                                  contextWeight: layer.context.map { parameters[$0].values.array })
        }
        return Router(source: source, expertNames: expertNames, topK: topK, temperature: temperature, input: routerInput,
                      layers: layers)
    }
}
