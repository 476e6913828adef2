import Glibc

/// One Mamba block's weights (`backbone.layers.{i}`): the pre-norm and the mixer around the
/// selective scan. `negativeA` is -exp(A_log), computed once at load as transformers does per call.
struct MambaLayerWeights {
    let norm: [Float]
    let inProj, xProj, dtProj, outProj: Projection
    /// [channels, K], the depthwise kernel of `conv1d.weight` ([channels, 1, K]), and its bias.
    let convWeight: [Float]
    let convBias: [Float]
    /// [channels, N]
    let negativeA: [Float]
    /// [channels]
    let skip: [Float]

    init(layer: Int, config: ModelConfig, loader: WeightLoader) throws {
        guard let ssm = config.stateSpace else { throw LoRAMixerError.state("not a state-space model") }
        let prefix = "backbone.layers.\(layer)"
        let mixer = "\(prefix).mixer"
        let channels = ssm.innerSize
        norm = try loader.vector("\(prefix).norm.weight", count: config.hiddenSize)
        func projection(_ module: ProjectionModule, biasRequired: Bool) throws -> Projection {
            let (inFeatures, outFeatures) = config.shape(of: module)
            let name = "\(mixer).\(module.name)"
            let weight = try loader.matrix("\(name).weight", rows: outFeatures, cols: inFeatures)
            let bias = biasRequired || loader.contains("\(name).bias") ? try loader.vector("\(name).bias", count: outFeatures) : nil
            return Projection(weight: weight, bias: bias)
        }
        inProj = try projection(.inProj, biasRequired: false)
        xProj = try projection(.xProj, biasRequired: false)
        dtProj = try projection(.dtProj, biasRequired: true)
        outProj = try projection(.outProj, biasRequired: false)
        convWeight = try loader.floats("\(mixer).conv1d.weight", shape: [channels, 1, ssm.convKernel])
        convBias = try loader.vector("\(mixer).conv1d.bias", count: channels)
        negativeA = try loader.floats("\(mixer).A_log", shape: [channels, ssm.stateSize]).map { -exp($0) }
        skip = try loader.vector("\(mixer).D", count: channels)
    }

    func projection(_ module: ProjectionModule) -> Projection {
        switch module {
        case .inProj: inProj
        case .xProj: xProj
        case .dtProj: dtProj
        default: outProj
        }
    }
}
