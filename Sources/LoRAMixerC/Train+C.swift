import CLoRAMixer
import LoRAMixer

@_cdecl("lmx_mixer_add_untrained_lora")
public func lmx_mixer_add_untrained_lora(_ mixer: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ rank: UInt32, _ loraAlpha: Float,
                                         _ moduleMask: UInt32, _ seed: UInt64, _ outIndex: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let name = try Arguments.string(name, "name")
        guard moduleMask != 0 else { throw LoRAMixerError.invalidArgument("module_mask is 0: set the bit of at least one LMX_MODULE_* value") }
        let modules = try (0..<32).filter { moduleMask & (1 << UInt32($0)) != 0 }.map {
            try mixer.model.config.module(rawValue: $0, "module_mask bit")
        }
        let expert = try LoRAExpert(untrainedFor: mixer.model.config, name: name, rank: Int(rank), alpha: Double(loraAlpha),
                                    modules: modules, seed: seed)
        let index = try mixer.add(expert)
        outIndex?.pointee = index
    }
}

@_cdecl("lmx_train_params_default")
public func lmx_train_params_default() -> lmx_train_params {
    let d = TrainingOptions()
    return lmx_train_params(
        struct_size: UInt32(MemoryLayout<lmx_train_params>.size), regime: UInt32(LMX_TRAIN_ROUTER),
        routing: UInt32(LMX_TRAIN_ROUTING_TOPK), router_context: 0, soft_steps: 0, top_k: 0, temperature: 0,
        alpha: d.alpha, lambda: d.lambda, beta: d.beta, sensitive: nil, learning_rate: d.learningRate,
        min_learning_rate: d.minLearningRate, warmup_steps: 0, weight_decay: d.weightDecay, adam_beta1: d.beta1,
        adam_beta2: d.beta2, adam_epsilon: d.epsilon, clip_norm: d.clipNorm, batch_size: UInt32(d.batchSize),
        epochs: UInt32(d.epochs), steps: 0, seed: d.seed, checkpoint_every: 0, resume: 0, n_threads: 0,
        eval_max_tokens: UInt32(d.evalMaxTokens))
}

@_cdecl("lmx_mixer_train")
public func lmx_mixer_train(_ mixer: OpaquePointer?, _ dataPath: UnsafePointer<CChar>?, _ evalPath: UnsafePointer<CChar>?,
                            _ outDir: UnsafePointer<CChar>?, _ params: UnsafePointer<lmx_train_params>?,
                            _ progress: lmx_train_progress_fn?, _ userData: UnsafeMutableRawPointer?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let data = try Arguments.string(dataPath, "data_path")
        let evaluation = try evalPath.map { _ in try Arguments.string(evalPath, "eval_path") }
        let output = try outDir.map { _ in try Arguments.string(outDir, "out_dir") }
        let params = try Arguments.params(params, "lmx_train_params", minimum: Arguments.MinimumSize.trainParams, default: lmx_train_params_default)
        let options = try TrainingOptions(params)
        _ = try mixer.train(options: options, dataPath: data, evaluationPath: evaluation, output: output,
                            resume: params.resume != 0) { step in
            guard let progress else { return true }
            return step.expertLoad.withUnsafeBufferPointer { load in
                step.layerEntropy.withUnsafeBufferPointer { entropy in
                    var report = lmx_train_progress(
                        struct_size: UInt32(MemoryLayout<lmx_train_progress>.size), step: UInt32(clamping: step.step),
                        total_steps: UInt32(clamping: step.totalSteps), epoch: UInt32(clamping: step.epoch), loss: step.loss,
                        cross_entropy: step.crossEntropy, balance: step.balance, entropy_term: step.entropyTerm,
                        preserve: step.preserve, learning_rate: step.learningRate, grad_norm: step.gradientNorm,
                        tokens_per_s: step.tokensPerSecond, elapsed_s: step.elapsedSeconds, eta_s: step.etaSeconds,
                        n_experts: load.count, expert_load: load.baseAddress, n_layers: entropy.count,
                        layer_entropy: entropy.baseAddress)
                    return progress(&report, userData) == 0
                }
            }
        }
    }
}

extension TrainingOptions {
    /// The options an `lmx_train_params` describes; enum fields and counts are checked here, the
    /// rest by `validate()`.
    init(_ p: lmx_train_params) throws {
        self.init()
        switch Int(p.regime) {
        case Int(LMX_TRAIN_ROUTER): regime = .router
        case Int(LMX_TRAIN_JOINT): regime = .joint
        default: throw LoRAMixerError.invalidArgument("lmx_train_params.regime \(p.regime) is not an LMX_TRAIN_* value (0...1)")
        }
        switch Int(p.routing) {
        case Int(LMX_TRAIN_ROUTING_TOPK): routing = .topk
        case Int(LMX_TRAIN_ROUTING_SOFT): routing = .soft
        case Int(LMX_TRAIN_ROUTING_LABEL): routing = .label
        default: throw LoRAMixerError.invalidArgument("lmx_train_params.routing \(p.routing) is not an LMX_TRAIN_ROUTING_* value (0...2)")
        }
        for (name, value) in [("soft_steps", p.soft_steps), ("top_k", p.top_k), ("warmup_steps", p.warmup_steps),
                              ("steps", p.steps), ("checkpoint_every", p.checkpoint_every), ("n_threads", p.n_threads),
                              ("batch_size", p.batch_size), ("epochs", p.epochs), ("eval_max_tokens", p.eval_max_tokens)]
            where value > UInt32(Int32.max) {
            throw LoRAMixerError.invalidArgument("lmx_train_params.\(name) \(value) (\(Int32(bitPattern: value)) as a signed int) must be in 0...\(Int32.max)")
        }
        routerInput = p.router_context != 0 ? .context : .token
        softSteps = Int(p.soft_steps)
        topK = p.top_k == 0 ? nil : Int(p.top_k)
        temperature = p.temperature == 0 ? nil : p.temperature
        alpha = p.alpha
        lambda = p.lambda
        beta = p.beta
        if p.sensitive != nil {
            sensitiveExperts = try Arguments.string(p.sensitive, "lmx_train_params.sensitive").split(separator: ",").map(String.init)
        }
        learningRate = p.learning_rate
        minLearningRate = p.min_learning_rate
        warmupSteps = Int(p.warmup_steps)
        weightDecay = p.weight_decay
        beta1 = p.adam_beta1
        beta2 = p.adam_beta2
        epsilon = p.adam_epsilon
        clipNorm = p.clip_norm
        batchSize = Int(p.batch_size)
        epochs = Int(p.epochs)
        steps = p.steps == 0 ? nil : Int(p.steps)
        seed = p.seed
        checkpointEvery = Int(p.checkpoint_every)
        threads = p.n_threads == 0 ? nil : Int(p.n_threads)
        evalMaxTokens = Int(p.eval_max_tokens)
        try validate()
    }
}
