/// One training step's computation over a packed batch: the forward pass of the frozen base with
/// routed LoRA deltas, keeping what the backward pass needs (the tape), the losses, and the
/// backward pass into the gradients of the trainable tensors (docs/ARCHITECTURE.md#training; the README
/// section "Training" spells out every term).
struct TrainingGraph {
    let model: LanguageModel
    let mixture: TrainableMixture
    let alpha: Float, lambda: Float
    let pool: ThreadPool?

    var config: ModelConfig { model.config }
    var expertCount: Int { mixture.expertNames.count }

    /// The loss terms of a batch (CE averaged over its targets; RSL terms averaged over layers).
    struct Losses: Equatable {
        var crossEntropy: Double = 0
        var balance: Double = 0
        var entropy: Double = 0
        var preserve: Double = 0
        var total: Double { crossEntropy + balance + entropy + preserve }
    }

    /// Routing statistics of a batch, per layer: each expert's share of top-K assignments (fbar)
    /// and the mean token entropy of p.
    struct RoutingStatistics {
        var load: [[Float]] = []
        var entropy: [Float] = []
    }
}

/// Activations of one layer kept for the backward pass. Rows are the packed batch's tokens.
/// Attention layers fill the decoder buffers; Mamba layers leave them empty and use `mixer`.
final class LayerTape {
    /// The layer's input and its router input h1 = RMSNorm(xIn) (for Mamba, also the mixer input).
    let xIn, h1: FloatBuffer
    let q, k, v, attention, xMid, h2, gatePre, up, act: FloatBuffer
    let mixer: MixerActivations?
    /// Attention probabilities per example: [heads, T, T].
    var probabilities: [FloatBuffer] = []
    /// Router probabilities and gates, [N, E]; top-K sets per row (for top-K gates and load).
    var p: FloatBuffer?
    var gates: FloatBuffer
    var selected: [[Int]] = []
    /// Context routers: the running mean of h1 per row, [N, d].
    var contextMean: FloatBuffer?
    /// Per (expert, module): z = u A^T, [N, rank] (unscaled, ungated).
    var loraInputs: [Int: FloatBuffer] = [:]

    init(rows n: Int, config c: ModelConfig, experts: Int) {
        let decoder = c.stateSpace == nil
        func buffer(_ width: Int) -> FloatBuffer { FloatBuffer(count: decoder ? n * width : 0) }
        xIn = FloatBuffer(count: n * c.hiddenSize)
        mixer = c.stateSpace.map { MixerActivations(rows: n, config: $0, hiddenSize: c.hiddenSize) }
        h1 = mixer?.h ?? FloatBuffer(count: n * c.hiddenSize)
        (xMid, h2) = (buffer(c.hiddenSize), buffer(c.hiddenSize))
        (q, attention) = (buffer(c.qDim), buffer(c.qDim))
        (k, v) = (buffer(c.kvDim), buffer(c.kvDim))
        (gatePre, up, act) = (buffer(c.intermediateSize), buffer(c.intermediateSize), buffer(c.intermediateSize))
        gates = FloatBuffer(count: n * experts)
    }

    static func key(expert: Int, module: ProjectionModule) -> Int { expert * ProjectionModule.allCases.count + module.rawValue }
}

/// The forward pass's tape: per layer, plus the final hidden states.
struct Tape {
    var layers: [LayerTape] = []
    var finalHidden: FloatBuffer
}
