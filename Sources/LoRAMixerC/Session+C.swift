import CLoRAMixer
import LoRAMixer

@_cdecl("lmx_session_params_default")
public func lmx_session_params_default() -> lmx_session_params {
    lmx_session_params(struct_size: UInt32(MemoryLayout<lmx_session_params>.size), n_ctx: 0, trace: 1, n_threads: 0)
}

@_cdecl("lmx_session_create")
public func lmx_session_create(_ mixer: OpaquePointer?, _ params: UnsafePointer<lmx_session_params>?,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> lmx_status {
    withStatus {
        let out = try Arguments.required(out, "out")
        out.pointee = nil
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let params = try Arguments.params(params, "lmx_session_params", minimum: Arguments.MinimumSize.sessionParams, default: lmx_session_params_default)
        let session = try mixer.makeSession(contextLength: params.n_ctx == 0 ? nil : Int(params.n_ctx), trace: params.trace != 0,
                                            threads: params.n_threads == 0 ? nil : Int(params.n_threads))
        out.pointee = Handles.make(session, .session)
    }
}

@_cdecl("lmx_session_free")
public func lmx_session_free(_ session: OpaquePointer?) {
    Handles.release(session, .session)
}

private func resolveSession(_ session: OpaquePointer?) throws -> Session {
    try Handles.resolve(session, .session, as: Session.self, "session")
}

@_cdecl("lmx_session_reset")
public func lmx_session_reset(_ session: OpaquePointer?) -> lmx_status {
    withStatus { try resolveSession(session).reset() }
}

@_cdecl("lmx_session_n_past")
public func lmx_session_n_past(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        try Arguments.required(out, "out_n_past").pointee = session.position
    }
}

@_cdecl("lmx_session_set_routing")
public func lmx_session_set_routing(_ session: OpaquePointer?, _ mode: UInt32) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        switch Int(mode) {
        case Int(LMX_ROUTING_NONE): try session.setRouting(.none)
        case Int(LMX_ROUTING_LEARNED): try session.setRouting(.learned)
        case Int(LMX_ROUTING_SOFT): try session.setRouting(.soft)
        case Int(LMX_ROUTING_UNIFORM): try session.setRouting(.uniform)
        case Int(LMX_ROUTING_FIXED):
            guard let weights = session.fixedWeights else {
                throw LoRAMixerError.state("LMX_ROUTING_FIXED needs weights: call lmx_session_set_fixed_weights first")
            }
            try session.setRouting(.fixed(weights))
        default:
            throw LoRAMixerError.invalidArgument("'mode' \(mode) is not an LMX_ROUTING_* value (0...4)")
        }
    }
}

@_cdecl("lmx_session_set_fixed_weights")
public func lmx_session_set_fixed_weights(_ session: OpaquePointer?, _ weights: UnsafePointer<Float>?, _ count: Int) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        guard count == session.experts.count else {
            throw LoRAMixerError.invalidArgument("'n_weights' is \(UInt(bitPattern: count)), expected \(session.experts.count) (one weight per expert)")
        }
        try session.setRouting(.fixed(Arguments.array(weights, count: count, limit: count, "weights")))
    }
}

@_cdecl("lmx_session_set_top_k")
public func lmx_session_set_top_k(_ session: OpaquePointer?, _ topK: UInt32) -> lmx_status {
    withStatus { try resolveSession(session).setTopK(topK == 0 ? nil : Int(topK)) }
}

@_cdecl("lmx_session_set_temperature")
public func lmx_session_set_temperature(_ session: OpaquePointer?, _ temperature: Float) -> lmx_status {
    withStatus { try resolveSession(session).setTemperature(temperature == 0 ? nil : temperature) }
}

@_cdecl("lmx_session_eval")
public func lmx_session_eval(_ session: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ count: Int, _ which: UInt32,
                             _ logits: UnsafeMutablePointer<Float>?, _ capacity: Int) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        if count > 0, count <= Int.max / 2 { try session.checkRoom(for: count) }
        let tokens = try Arguments.array(tokens, count: count, limit: session.contextLength, "tokens")
        let selection: LogitsSelection
        let rows: Int
        switch Int(which) {
        case Int(LMX_LOGITS_NONE): (selection, rows) = (.none, 0)
        case Int(LMX_LOGITS_LAST): (selection, rows) = (.last, 1)
        case Int(LMX_LOGITS_ALL): (selection, rows) = (.all, tokens.count)
        default: throw LoRAMixerError.invalidArgument("'which' \(which) is not an LMX_LOGITS_* value (0...2)")
        }
        let needed = rows * session.model.config.vocabSize
        if needed > 0 {
            guard logits != nil else { throw LoRAMixerError.invalidArgument("'logits' must not be NULL unless which is LMX_LOGITS_NONE") }
            guard Arguments.capacity(capacity) >= needed else {
                throw LoRAMixerError.shape("'capacity' is \(capacity) floats, but \(rows) row(s) of \(session.model.config.vocabSize) logits need \(needed)")
            }
        }
        let values = try session.evaluate(tokens, logits: selection)
        if let logits {
            values.withUnsafeBufferPointer { logits.update(from: $0.baseAddress!, count: values.count) }
        }
    }
}

@_cdecl("lmx_generate_params_default")
public func lmx_generate_params_default() -> lmx_generate_params {
    lmx_generate_params(struct_size: UInt32(MemoryLayout<lmx_generate_params>.size), max_tokens: 32, temperature: 0,
                        top_k: 0, top_p: 1, seed: 0, stop_tokens: nil, n_stop_tokens: 0, on_token: nil, user_data: nil)
}

@_cdecl("lmx_session_generate")
public func lmx_session_generate(_ session: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ promptCount: Int,
                                 _ params: UnsafePointer<lmx_generate_params>?, _ outTokens: UnsafeMutablePointer<Int32>?,
                                 _ outCapacity: Int, _ outCount: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        let outCount = try Arguments.required(outCount, "n_out")
        outCount.pointee = 0
        let outTokens = try Arguments.required(outTokens, "out_tokens")
        let capacity = Arguments.capacity(outCapacity)
        if promptCount > 0, promptCount <= Int.max / 2 { try session.checkRoom(for: promptCount) }
        let prompt = try Arguments.array(prompt, count: promptCount, limit: session.contextLength, "prompt", allowEmpty: true)
        let params = try Arguments.params(params, "lmx_generate_params", minimum: Arguments.MinimumSize.generateParams, default: lmx_generate_params_default)
        let stops = try Arguments.array(params.stop_tokens, count: params.n_stop_tokens, limit: session.model.config.vocabSize,
                                        "params.stop_tokens", allowEmpty: true)
        let options = Session.GenerationOptions(
            maxTokens: min(Int(params.max_tokens), capacity),
            sampling: SamplingOptions(temperature: params.temperature, topK: Int(params.top_k), topP: params.top_p, seed: params.seed),
            stopTokens: Set(stops))
        let callback = params.on_token
        let userData = params.user_data
        do {
            _ = try session.generate(prompt: prompt, options: options) { token in
                outTokens[outCount.pointee] = token
                outCount.pointee += 1
                return callback.map { $0(token, userData) == 0 } ?? true
            }
        } catch {
            outCount.pointee = 0
            throw error
        }
    }
}

@_cdecl("lmx_session_trace_size")
public func lmx_session_trace_size(_ session: OpaquePointer?, _ tokens: UnsafeMutablePointer<Int>?,
                                   _ layers: UnsafeMutablePointer<Int>?, _ width: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        let (tokens, layers, width) = try (Arguments.required(tokens, "n_tokens"), Arguments.required(layers, "n_layers"),
                                           Arguments.required(width, "width"))
        tokens.pointee = session.trace?.tokenCount ?? 0
        layers.pointee = session.model.config.layerCount
        width.pointee = session.experts.count
    }
}

@_cdecl("lmx_session_trace_copy")
public func lmx_session_trace_copy(_ session: OpaquePointer?, _ expertIDs: UnsafeMutablePointer<Int32>?,
                                   _ gates: UnsafeMutablePointer<Float>?, _ capacity: Int,
                                   _ tokens: UnsafeMutablePointer<Int32>?, _ tokensCapacity: Int) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        let expertIDs = try Arguments.required(expertIDs, "expert_ids")
        let gates = try Arguments.required(gates, "gates")
        guard let trace = session.trace else {
            throw LoRAMixerError.state("the session was created with tracing off (lmx_session_params.trace = 0)")
        }
        guard Arguments.capacity(capacity) >= trace.expertIDs.count else {
            throw LoRAMixerError.shape("'capacity' is \(capacity), but the trace holds \(trace.expertIDs.count) entries (n_tokens * n_layers * width)")
        }
        if let tokens {
            guard Arguments.capacity(tokensCapacity) >= trace.tokenCount else {
                throw LoRAMixerError.shape("'tokens_capacity' is \(tokensCapacity), but the trace holds \(trace.tokenCount) tokens")
            }
            tokens.update(from: trace.tokens, count: trace.tokenCount)
        }
        expertIDs.update(from: trace.expertIDs, count: trace.expertIDs.count)
        gates.update(from: trace.gates, count: trace.gates.count)
    }
}

@_cdecl("lmx_session_get_params")
public func lmx_session_get_params(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<lmx_session_params>?) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        try Arguments.writeOutput(out, "lmx_session_params") { declared in
            lmx_session_params(struct_size: declared, n_ctx: UInt32(session.contextLength),
                               trace: session.trace == nil ? 0 : 1, n_threads: UInt32(session.threads))
        }
    }
}

@_cdecl("lmx_session_get_routing")
public func lmx_session_get_routing(_ session: OpaquePointer?, _ outMode: UnsafeMutablePointer<UInt32>?) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        let out = try Arguments.required(outMode, "out_mode")
        let mode: Int = switch session.routing {
        case .none: LMX_ROUTING_NONE
        case .learned: LMX_ROUTING_LEARNED
        case .soft: LMX_ROUTING_SOFT
        case .fixed: LMX_ROUTING_FIXED
        case .uniform: LMX_ROUTING_UNIFORM
        }
        out.pointee = UInt32(mode)
    }
}

@_cdecl("lmx_session_get_fixed_weights")
public func lmx_session_get_fixed_weights(_ session: OpaquePointer?, _ weights: UnsafeMutablePointer<Float>?, _ capacity: Int,
                                          _ count: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        let count = try Arguments.required(count, "n_weights")
        let values = session.fixedWeights ?? []
        count.pointee = values.count
        guard !values.isEmpty, Arguments.capacity(capacity) > 0 || weights != nil else { return }
        guard let weights else { throw LoRAMixerError.invalidArgument("'weights' must not be NULL when capacity is \(capacity)") }
        guard Arguments.capacity(capacity) >= values.count else {
            throw LoRAMixerError.shape("'capacity' is \(capacity) floats, but the session has \(values.count) fixed weights")
        }
        weights.update(from: values, count: values.count)
    }
}

@_cdecl("lmx_session_get_top_k")
public func lmx_session_get_top_k(_ session: OpaquePointer?, _ outTopK: UnsafeMutablePointer<UInt32>?) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        try Arguments.required(outTopK, "out_top_k").pointee = UInt32(session.effectiveTopK)
    }
}

@_cdecl("lmx_session_get_temperature")
public func lmx_session_get_temperature(_ session: OpaquePointer?, _ outTemperature: UnsafeMutablePointer<Float>?) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        try Arguments.required(outTemperature, "out_temperature").pointee = session.effectiveTemperature
    }
}

@_cdecl("lmx_session_set_abort_callback")
public func lmx_session_set_abort_callback(_ session: OpaquePointer?, _ callback: lmx_abort_callback?,
                                           _ userData: UnsafeMutableRawPointer?) -> lmx_status {
    withStatus {
        let session = try resolveSession(session)
        session.abortCheck = callback.map { callback in { callback(userData) != 0 } }
    }
}
