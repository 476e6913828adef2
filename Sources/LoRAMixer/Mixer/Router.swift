import Glibc

/// A learned router (docs/ARCHITECTURE.md#method): per layer, z = W h (+ W_c c) + b over the experts,
/// p = softmax(z / temperature), top-K of p. Rows follow `expertNames`.
public struct Router: Sendable {
    public enum Input: String, Sendable {
        /// z_t from the token's own router input h_t (the paper's form).
        case token
        /// z_t also from c_t, the causal running mean of h over the sequence so far.
        case context
    }

    public let source: String
    public let expertNames: [String]
    public let topK: Int
    public let temperature: Float
    public let input: Input
    let layers: [RouterLayer]

    /// Reads a router file for a model of `config`.
    public init(path: String, config: ModelConfig) throws {
        let file = try SafeTensorsFile(path: path, mode: .copied)
        let metadata = file.metadata
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else {
                throw LoRAMixerError.format("\(path): __metadata__ has no '\(key)' (not a loramixer router file?)")
            }
            return value
        }
        guard try field("format") == "loramixer.router" else {
            throw LoRAMixerError.format("\(path): __metadata__ format is '\(metadata["format"] ?? "")', expected 'loramixer.router'")
        }
        guard try field("version") == "1" else {
            throw LoRAMixerError.format("\(path): router file version '\(metadata["version"] ?? "")' is not supported (expected '1')")
        }
        let experts = try JSONParser.parse(field("experts"), context: "\(path): __metadata__ experts")
        guard let names = experts.array?.compactMap(\.string), names.count == experts.array?.count, !names.isEmpty else {
            throw LoRAMixerError.format("\(path): __metadata__ experts must be a non-empty JSON array of names")
        }
        guard Set(names).count == names.count else {
            throw LoRAMixerError.format("\(path): __metadata__ experts lists a name twice: \(names)")
        }
        guard let topK = Int(try field("top_k")), (1...names.count).contains(topK) else {
            throw LoRAMixerError.format("\(path): __metadata__ top_k '\(metadata["top_k"] ?? "")' must be an integer in 1...\(names.count)")
        }
        let temperatureText = metadata["temperature"] ?? "1.0"
        guard let temperature = Float(temperatureText), temperature.isFinite, temperature > 0 else {
            throw LoRAMixerError.format("\(path): __metadata__ temperature '\(temperatureText)' must be a positive number")
        }
        let scope = metadata["scope"] ?? "layer"
        guard scope == "layer" else {
            throw LoRAMixerError.format("\(path): router scope '\(scope)' is not supported by this version (supported: layer)")
        }
        let inputText = metadata["input"] ?? "token"
        guard let input = Input(rawValue: inputText) else {
            throw LoRAMixerError.format("\(path): __metadata__ input '\(inputText)' must be 'token' or 'context'")
        }

        let e = names.count
        let d = config.hiddenSize
        var expected = Set<String>()
        var layers: [RouterLayer] = []
        for layer in 0..<config.layerCount {
            let prefix = "router.layers.\(layer)"
            func matrix(_ name: String) throws -> [Float] {
                let view = try file.tensor(name)
                guard view.shape == [e, d] else {
                    throw LoRAMixerError.shape("\(path): tensor '\(name)' has shape \(view.shape), expected [\(e), \(d)] (experts x d_model)")
                }
                expected.insert(name)
                return try view.floats()
            }
            let weight = try matrix("\(prefix).weight")
            let contextWeight = input == .context ? try matrix("\(prefix).context_weight") : nil
            var bias: [Float]?
            if file.info("\(prefix).bias") != nil {
                let view = try file.tensor("\(prefix).bias")
                guard view.shape == [e] else {
                    throw LoRAMixerError.shape("\(path): tensor '\(prefix).bias' has shape \(view.shape), expected [\(e)]")
                }
                expected.insert("\(prefix).bias")
                bias = try view.floats()
            }
            layers.append(RouterLayer(weight: weight, bias: bias, contextWeight: contextWeight))
        }
        if let stray = file.tensorNames.first(where: { !expected.contains($0) }) {
            throw LoRAMixerError.format("\(path): unexpected tensor '\(stray)' (a \(config.layerCount)-layer model with input '\(input.rawValue)' uses router.layers.{0..\(config.layerCount - 1)}.weight, .bias\(input == .context ? ", .context_weight" : ""))")
        }
        guard layers.allSatisfy({ !$0.weight.contains { !$0.isFinite } }) else {
            throw LoRAMixerError.format("\(path): router weights contain NaN or infinity")
        }
        self.init(source: path, expertNames: names, topK: topK, temperature: temperature, input: input, layers: layers)
    }

    init(source: String, expertNames: [String], topK: Int, temperature: Float, input: Input, layers: [RouterLayer]) {
        self.source = source
        self.expertNames = expertNames
        self.topK = topK
        self.temperature = temperature
        self.input = input
        self.layers = layers
    }

    /// The same router with rows reordered to follow `experts` (the mixer's order). Every name
    /// must appear on both sides.
    public func ordered(for experts: [String]) throws -> Router {
        if let missing = expertNames.first(where: { !experts.contains($0) }) {
            throw LoRAMixerError.notFound("\(source): the router routes to expert '\(missing)', which the mixer does not have (mixer experts: \(experts))")
        }
        if let extra = experts.first(where: { !expertNames.contains($0) }) {
            throw LoRAMixerError.notFound("\(source): the mixer has expert '\(extra)', which the router does not route to (router experts: \(expertNames))")
        }
        let permutation = experts.compactMap { name in expertNames.firstIndex(of: name) }
        return Router(source: source, expertNames: experts, topK: topK, temperature: temperature, input: input,
                      layers: layers.map { $0.permuted(permutation) })
    }
}

/// One layer's router weights: `weight` and `contextWeight` [E, d], `bias` [E].
struct RouterLayer: Sendable {
    let weight: [Float]
    let bias: [Float]?
    let contextWeight: [Float]?

    func permuted(_ rows: [Int]) -> RouterLayer {
        let d = weight.count / rows.count
        func reorder(_ matrix: [Float]) -> [Float] { rows.flatMap { matrix[($0 * d)..<(($0 + 1) * d)] } }
        return RouterLayer(weight: reorder(weight), bias: bias.map { b in rows.map { b[$0] } },
                           contextWeight: contextWeight.map(reorder))
    }
}
