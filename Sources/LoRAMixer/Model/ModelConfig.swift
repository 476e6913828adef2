import Glibc

/// The decoder families this library runs. Each maps to Hugging Face architecture names.
public enum ModelFamily: String, Sendable {
    case llama, mistral, qwen2
    case mamba
    case falconMamba = "falcon_mamba"

    static func from(architecture: String) -> ModelFamily? {
        switch architecture {
        case "LlamaForCausalLM": return .llama
        case "MistralForCausalLM": return .mistral
        case "Qwen2ForCausalLM": return .qwen2
        case "MambaForCausalLM": return .mamba
        case "FalconMambaForCausalLM": return .falconMamba
        default: return nil
        }
    }

    static let supportedArchitectures = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
                                         "MambaForCausalLM", "FalconMambaForCausalLM"]

    /// Mamba-style selective state-space models (no attention, a recurrent state per sequence).
    public var isStateSpace: Bool { self == .mamba || self == .falconMamba }
}

/// What `config.json` says about a decoder, validated. Attention fields (heads, RoPE, windows) are
/// zero or empty for state-space models, whose own settings are in `stateSpace`.
public struct ModelConfig: Sendable, Equatable {
    public var architecture: String
    public var family: ModelFamily
    public var vocabSize: Int
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var rmsNormEps: Float
    public var rope: RoPEConfig
    public var tieWordEmbeddings: Bool
    /// Per layer: how many most recent positions (the token's own included) a query may attend to;
    /// nil for full causal attention.
    public var slidingWindows: [Int?]
    /// Mamba / FalconMamba settings; nil for the llama family.
    public var stateSpace: StateSpaceConfig?

    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }
}

extension ModelConfig {
    /// Reads `config.json`. `source` names the file in error messages.
    public init(json: JSONValue, source: String) throws {
        guard let root = json.object else {
            throw LoRAMixerError.format("\(source): top level is not a JSON object")
        }
        let fields = ConfigFields(object: root, source: source)

        let architectures = try fields.stringArray("architectures")
        guard let architecture = architectures.first else {
            throw LoRAMixerError.format("\(source): 'architectures' is empty")
        }
        guard let family = ModelFamily.from(architecture: architecture) else {
            throw LoRAMixerError.format(
                "\(source): unsupported architecture '\(architecture)' (supported: \(ModelFamily.supportedArchitectures.joined(separator: ", ")))")
        }
        if family.isStateSpace {
            self = try ModelConfig(stateSpaceFields: fields, architecture: architecture, family: family)
            return
        }
        self.architecture = architecture
        self.family = family

        let activation = try fields.optionalString("hidden_act") ?? "silu"
        guard activation == "silu" else {
            throw LoRAMixerError.format("\(source): hidden_act '\(activation)' is not supported (expected 'silu')")
        }
        if try fields.optionalBool("mlp_bias") == true {
            throw LoRAMixerError.format("\(source): mlp_bias = true is not supported")
        }

        vocabSize = try fields.positiveInt("vocab_size")
        hiddenSize = try fields.positiveInt("hidden_size")
        layerCount = try fields.positiveInt("num_hidden_layers")
        headCount = try fields.positiveInt("num_attention_heads")
        kvHeadCount = try fields.optionalPositiveInt("num_key_value_heads") ?? headCount
        intermediateSize = try fields.positiveInt("intermediate_size")
        maxPositions = try fields.optionalPositiveInt("max_position_embeddings") ?? 2048
        rmsNormEps = Float(try fields.optionalDouble("rms_norm_eps") ?? 1e-6)
        tieWordEmbeddings = try fields.optionalBool("tie_word_embeddings") ?? false

        if let explicitHeadDim = try fields.optionalPositiveInt("head_dim") {
            headDim = explicitHeadDim
        } else {
            guard hiddenSize % headCount == 0 else {
                throw LoRAMixerError.format(
                    "\(source): hidden_size \(hiddenSize) is not divisible by num_attention_heads \(headCount) and no head_dim is given")
            }
            headDim = hiddenSize / headCount
        }
        guard headCount % kvHeadCount == 0 else {
            throw LoRAMixerError.format(
                "\(source): num_attention_heads \(headCount) is not a multiple of num_key_value_heads \(kvHeadCount)")
        }
        guard headDim % 2 == 0 else {
            throw LoRAMixerError.format("\(source): head_dim \(headDim) must be even for rotary embeddings")
        }
        // Bound every size so later products (KV cache, logits) cannot overflow.
        for (name, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", layerCount),
                              ("intermediate_size", intermediateSize), ("head_dim", headDim),
                              ("num_attention_heads", headCount), ("max_position_embeddings", maxPositions)]
        where value > 1 << 24 {
            throw LoRAMixerError.format("\(source): \(name) = \(value) is implausibly large")
        }

        rope = try RoPEConfig(fields: fields, headDim: headDim)
        slidingWindows = try Self.slidingWindows(fields: fields, family: family, layerCount: layerCount)
    }

    public init(contentsOf path: String) throws {
        try self.init(json: JSONParser.parse(SystemFiles.read(path), context: path), source: path)
    }

    private static func slidingWindows(fields: ConfigFields, family: ModelFamily, layerCount: Int) throws -> [Int?] {
        let window = try fields.optionalPositiveInt("sliding_window")
        switch family {
        case .llama, .mamba, .falconMamba:
            return Array(repeating: nil, count: layerCount)
        case .mistral:
            return Array(repeating: window, count: layerCount)
        case .qwen2:
            guard try fields.optionalBool("use_sliding_window") == true, let window else {
                return Array(repeating: nil, count: layerCount)
            }
            if let layerTypes = try fields.optionalStringArray("layer_types") {
                guard layerTypes.count == layerCount else {
                    throw LoRAMixerError.format(
                        "\(fields.source): layer_types has \(layerTypes.count) entries, expected \(layerCount)")
                }
                return layerTypes.map { $0 == "sliding_attention" ? window : nil }
            }
            let fullLayers = try fields.optionalInt("max_window_layers") ?? layerCount
            return (0..<layerCount).map { $0 >= fullLayers ? window : nil }
        }
    }
}

/// Rotary position embedding settings: plain, `linear` or `llama3` frequency scaling.
public struct RoPEConfig: Sendable, Equatable {
    public enum Scaling: Sendable, Equatable {
        case none
        case linear(factor: Double)
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Double)
    }

    public var theta: Double
    public var scaling: Scaling

    init(theta: Double, scaling: Scaling) {
        (self.theta, self.scaling) = (theta, scaling)
    }

    /// transformers 5 writes `rope_parameters` (theta and scaling together); older files have a
    /// top-level `rope_theta` and an optional `rope_scaling` object. Both are read.
    init(fields: ConfigFields, headDim: Int) throws {
        let source = fields.source
        var scalingFields: ConfigFields?
        if let parameters = try fields.optionalObject("rope_parameters") {
            let nested = ConfigFields(object: parameters, source: "\(source): rope_parameters")
            theta = try nested.optionalDouble("rope_theta") ?? fields.optionalDouble("rope_theta") ?? 10000
            scalingFields = nested
        } else {
            theta = try fields.optionalDouble("rope_theta") ?? 10000
            if let scaling = try fields.optionalObject("rope_scaling") {
                scalingFields = ConfigFields(object: scaling, source: "\(source): rope_scaling")
            }
        }
        guard theta > 0, theta.isFinite else {
            throw LoRAMixerError.format("\(source): rope_theta \(theta) must be positive")
        }
        if let partial = try fields.optionalDouble("partial_rotary_factor"), partial != 1 {
            throw LoRAMixerError.format("\(source): partial_rotary_factor \(partial) is not supported")
        }

        guard let scalingFields else {
            scaling = .none
            return
        }
        let type = try scalingFields.optionalString("rope_type") ?? scalingFields.optionalString("type") ?? "default"
        switch type {
        case "default":
            scaling = .none
        case "linear":
            scaling = .linear(factor: try scalingFields.positiveDouble("factor"))
        case "llama3":
            let low = try scalingFields.positiveDouble("low_freq_factor")
            let high = try scalingFields.positiveDouble("high_freq_factor")
            guard high > low else {
                throw LoRAMixerError.format(
                    "\(scalingFields.source): high_freq_factor \(high) must exceed low_freq_factor \(low)")
            }
            scaling = .llama3(
                factor: try scalingFields.positiveDouble("factor"), lowFreqFactor: low, highFreqFactor: high,
                originalMaxPositions: try scalingFields.positiveDouble("original_max_position_embeddings"))
        default:
            throw LoRAMixerError.format(
                "\(scalingFields.source): rope_type '\(type)' is not supported (supported: default, linear, llama3)")
        }
    }

    /// Inverse frequencies for the `headDim / 2` rotary pairs, as transformers computes them.
    public func inverseFrequencies(headDim: Int) -> [Double] {
        let base: [Double] = (0..<(headDim / 2)).map { 1.0 / pow(theta, Double(2 * $0) / Double(headDim)) }
        switch scaling {
        case .none:
            return base
        case .linear(let factor):
            return base.map { $0 / factor }
        case .llama3(let factor, let low, let high, let originalMax):
            let lowFreqWavelength = originalMax / low
            let highFreqWavelength = originalMax / high
            return base.map { frequency in
                let wavelength = 2 * Double.pi / frequency
                if wavelength < highFreqWavelength { return frequency }
                if wavelength > lowFreqWavelength { return frequency / factor }
                let smooth = (originalMax / wavelength - low) / (high - low)
                return (1 - smooth) * frequency / factor + smooth * frequency
            }
        }
    }
}

/// Typed, validated reads from one JSON object of a config file, with messages naming the file
/// and the key.
struct ConfigFields {
    let object: JSONObject
    let source: String

    private func value(_ key: String) -> JSONValue? {
        guard let value = object[key], value != .null else { return nil }
        return value
    }

    private func mismatch(_ key: String, _ expected: String) -> LoRAMixerError {
        .format("\(source): '\(key)' must be \(expected)")
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value.string else { throw mismatch(key, "a string") }
        return string
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard let bool = value.bool else { throw mismatch(key, "true or false") }
        return bool
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let value = value(key) else { return nil }
        guard let int = value.int else { throw mismatch(key, "an integer") }
        return int
    }

    func optionalPositiveInt(_ key: String) throws -> Int? {
        guard let int = try optionalInt(key) else { return nil }
        guard int > 0 else { throw mismatch(key, "a positive integer (found \(int))") }
        return int
    }

    func positiveInt(_ key: String) throws -> Int {
        guard let int = try optionalPositiveInt(key) else {
            throw LoRAMixerError.format("\(source): missing '\(key)'")
        }
        return int
    }

    func optionalDouble(_ key: String) throws -> Double? {
        guard let value = value(key) else { return nil }
        guard let double = value.double, double.isFinite else { throw mismatch(key, "a number") }
        return double
    }

    func positiveDouble(_ key: String) throws -> Double {
        guard let double = try optionalDouble(key) else {
            throw LoRAMixerError.format("\(source): missing '\(key)'")
        }
        guard double > 0 else { throw mismatch(key, "positive (found \(double))") }
        return double
    }

    func optionalObject(_ key: String) throws -> JSONObject? {
        guard let value = value(key) else { return nil }
        guard let object = value.object else { throw mismatch(key, "an object") }
        return object
    }

    func optionalStringArray(_ key: String) throws -> [String]? {
        guard let value = value(key) else { return nil }
        guard let array = value.array else { throw mismatch(key, "an array of strings") }
        return try array.map { element in
            guard let string = element.string else { throw mismatch(key, "an array of strings") }
            return string
        }
    }

    func stringArray(_ key: String) throws -> [String] {
        guard let array = try optionalStringArray(key) else {
            throw LoRAMixerError.format("\(source): missing '\(key)'")
        }
        return array
    }
}
