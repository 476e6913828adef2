import Glibc

/// The selective state-space settings of a Mamba or FalconMamba `config.json`.
public struct StateSpaceConfig: Sendable, Equatable {
    /// N: the SSM state per channel (`state_size`).
    public var stateSize: Int
    /// K: the causal depthwise convolution's width (`conv_kernel`).
    public var convKernel: Int
    /// I: channels inside the mixer (`intermediate_size`, = expand x hidden_size).
    public var innerSize: Int
    /// R: the rank of the time-step projection (`time_step_rank`; "auto" = ceil(hidden / 16)).
    public var timeStepRank: Int
    /// FalconMamba's weightless RMS normalisation of dt, B and C (`mixer_rms_eps`); nil for Mamba.
    public var mixerNormEps: Float?
}

extension ModelConfig {
    /// Reads a `MambaForCausalLM` / `FalconMambaForCausalLM` config. The attention fields stay
    /// zero; `maxPositions` only bounds a session's n_ctx, since the state does not grow with it.
    init(stateSpaceFields fields: ConfigFields, architecture: String, family: ModelFamily) throws {
        let source = fields.source
        self.architecture = architecture
        self.family = family
        let activation = try fields.optionalString("hidden_act") ?? "silu"
        guard activation == "silu" else {
            throw LoRAMixerError.format("\(source): hidden_act '\(activation)' is not supported (expected 'silu')")
        }
        vocabSize = try fields.positiveInt("vocab_size")
        hiddenSize = try fields.positiveInt("hidden_size")
        layerCount = try fields.positiveInt("num_hidden_layers")
        rmsNormEps = Float(try fields.optionalDouble("layer_norm_epsilon") ?? 1e-5)
        tieWordEmbeddings = try fields.optionalBool("tie_word_embeddings") ?? true
        maxPositions = try fields.optionalPositiveInt("max_position_embeddings") ?? 1 << 20
        (headCount, kvHeadCount, headDim) = (0, 0, 0)
        rope = RoPEConfig(theta: 10000, scaling: .none)
        slidingWindows = Array(repeating: nil, count: layerCount)

        let expand = try fields.optionalPositiveInt("expand") ?? 2
        let innerSize = try fields.optionalPositiveInt("intermediate_size") ?? expand * hiddenSize
        guard innerSize == expand * hiddenSize else {
            throw LoRAMixerError.format(
                "\(source): intermediate_size \(innerSize) is not expand (\(expand)) x hidden_size (\(hiddenSize))")
        }
        intermediateSize = innerSize
        let timeStepRank: Int
        switch fields.object["time_step_rank"] {
        case nil, .null?, .string("auto")?:
            timeStepRank = (hiddenSize + 15) / 16
        case let value?:
            guard let rank = value.int, rank > 0 else {
                throw LoRAMixerError.format("\(source): 'time_step_rank' must be \"auto\" or a positive integer")
            }
            timeStepRank = rank
        }
        if let bias = try fields.optionalBool("use_conv_bias"), !bias {
            throw LoRAMixerError.format("\(source): use_conv_bias = false is not supported")
        }
        stateSpace = StateSpaceConfig(
            stateSize: try fields.optionalPositiveInt("state_size") ?? 16,
            convKernel: try fields.optionalPositiveInt("conv_kernel") ?? 4,
            innerSize: innerSize, timeStepRank: timeStepRank,
            mixerNormEps: family == .falconMamba ? Float(try fields.optionalDouble("mixer_rms_eps") ?? 1e-6) : nil)
        for (name, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", layerCount),
                              ("intermediate_size", innerSize), ("state_size", stateSpace!.stateSize),
                              ("conv_kernel", stateSpace!.convKernel), ("time_step_rank", timeStepRank)]
        where value > 1 << 24 {
            throw LoRAMixerError.format("\(source): \(name) = \(value) is implausibly large")
        }
    }
}
