import Glibc

/// A loaded decoder (llama family or Mamba): validated config and weights. Immutable, so one instance serves
/// any number of sessions on any number of threads.
public final class LanguageModel: @unchecked Sendable {
    public let config: ModelConfig
    public let directory: String
    let weights: SafeTensorsCollection
    let embedding: WeightMatrix
    /// Llama-family layers; empty for a state-space model.
    let layers: [DecoderLayerWeights]
    /// Mamba layers; empty for a llama-family model.
    let mixerLayers: [MambaLayerWeights]
    let finalNorm: [Float]
    let lmHead: WeightMatrix
    let inverseFrequencies: [Double]
    /// Ones, the weight of FalconMamba's weightless RMS norms; empty otherwise.
    let unitWeight: [Float]
    /// The folder's tokenizer, read on first use.
    let tokenizerCache = TokenizerCache()

    public convenience init(directory: String, mode: LoadMode = .mapped) throws {
        try SystemFiles.requireFolder(directory, "model folder")
        let configPath = SystemFiles.join(directory, "config.json")
        guard SystemFiles.exists(configPath) else {
            throw LoRAMixerError.io("\(directory): no config.json (expected a Hugging Face model folder)")
        }
        let config = try ModelConfig(contentsOf: configPath)
        try self.init(config: config, weights: SafeTensorsCollection(directory: directory, mode: mode), directory: directory)
    }

    init(config: ModelConfig, weights: SafeTensorsCollection, directory: String) throws {
        self.config = config
        self.directory = directory
        self.weights = weights
        let loader = WeightLoader(weights: weights, source: directory)
        let stateSpace = config.family.isStateSpace
        embedding = try loader.matrix(stateSpace ? "backbone.embeddings.weight" : "model.embed_tokens.weight",
                                      rows: config.vocabSize, cols: config.hiddenSize)
        if stateSpace {
            layers = []
            mixerLayers = try (0..<config.layerCount).map { try MambaLayerWeights(layer: $0, config: config, loader: loader) }
        } else {
            layers = try (0..<config.layerCount).map { try DecoderLayerWeights(layer: $0, config: config, loader: loader) }
            mixerLayers = []
        }
        finalNorm = try loader.vector(stateSpace ? "backbone.norm_f.weight" : "model.norm.weight", count: config.hiddenSize)
        if weights.contains("lm_head.weight") {
            lmHead = try loader.matrix("lm_head.weight", rows: config.vocabSize, cols: config.hiddenSize)
        } else if config.tieWordEmbeddings {
            lmHead = embedding
        } else {
            throw LoRAMixerError.notFound(
                "\(directory): tensor 'lm_head.weight' is missing and tie_word_embeddings is false")
        }
        inverseFrequencies = config.rope.inverseFrequencies(headDim: config.headDim)
        unitWeight = config.stateSpace.map { Array(repeating: 1, count: max($0.timeStepRank, $0.stateSize)) } ?? []
    }

    /// Bytes of weight data in the model's safetensors files.
    public var weightBytes: Int { weights.totalBytes }

    /// The base weights of `module` in `layer` (a module the model has).
    func projection(layer: Int, module: ProjectionModule) -> Projection {
        if mixerLayers.isEmpty { return layers[layer].projections[module.rawValue] }
        return mixerLayers[layer].projection(module)
    }

    /// A fresh state for a sequence of up to `capacity` positions.
    func makeState(capacity: Int) throws -> SequenceState {
        if let stateSpace = config.stateSpace {
            return try RecurrentState(config: stateSpace, layers: config.layerCount, capacity: capacity)
        }
        return try KVCache(layers: config.layerCount, capacity: capacity, kvHeads: config.kvHeadCount, headDim: config.headDim)
    }
}

/// One decoder layer's weights. Projections are indexed by `ProjectionModule.rawValue`.
struct DecoderLayerWeights {
    let inputNorm: [Float]
    let postAttentionNorm: [Float]
    let projections: [Projection]

    init(layer: Int, config: ModelConfig, loader: WeightLoader) throws {
        let prefix = "model.layers.\(layer)"
        inputNorm = try loader.vector("\(prefix).input_layernorm.weight", count: config.hiddenSize)
        postAttentionNorm = try loader.vector("\(prefix).post_attention_layernorm.weight", count: config.hiddenSize)
        projections = try ProjectionModule.decoderModules.map { module in
            let (inFeatures, outFeatures) = config.shape(of: module)
            let name = "\(prefix).\(module.block).\(module.name)"
            let weight = try loader.matrix("\(name).weight", rows: outFeatures, cols: inFeatures)
            let biasRequired = config.family == .qwen2 && [.q, .k, .v].contains(module)
            let bias: [Float]? = biasRequired || loader.contains("\(name).bias")
                ? try loader.vector("\(name).bias", count: outFeatures) : nil
            return Projection(weight: weight, bias: bias)
        }
    }
}

struct Projection {
    let weight: WeightMatrix
    let bias: [Float]?
}

/// Fetches named tensors with the shapes the config implies, naming the model in errors.
struct WeightLoader {
    let weights: SafeTensorsCollection
    let source: String

    func contains(_ name: String) -> Bool { weights.contains(name) }

    func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        try WeightMatrix(weights.tensor(name), rows: rows, cols: cols, source: source)
    }

    func vector(_ name: String, count: Int) throws -> [Float] {
        try floats(name, shape: [count])
    }

    /// Any tensor as f32 values, after checking its shape.
    func floats(_ name: String, shape: [Int]) throws -> [Float] {
        let view = try weights.tensor(name)
        guard view.shape == shape else {
            throw LoRAMixerError.shape("\(source): tensor '\(name)' has shape \(view.shape), expected \(shape)")
        }
        return try view.floats()
    }
}
