import CLoRAMixer
import LoRAMixer

// lmx_session_generate_text: text in, text out, with the session's generation and a tokenizer.

@_cdecl("lmx_text_params_default")
public func lmx_text_params_default() -> lmx_text_params {
    lmx_text_params(struct_size: UInt32(MemoryLayout<lmx_text_params>.size), flags: 0, on_text: nil, user_data: nil)
}

private let knownTextFlags = UInt32(LMX_TEXT_CHAT) | UInt32(LMX_TEXT_PARSE_SPECIAL) | UInt32(LMX_TEXT_NO_BOS)
    | UInt32(LMX_TEXT_SHOW_SPECIAL) | UInt32(LMX_TEXT_IGNORE_END_OF_TURN)

@_cdecl("lmx_session_generate_text")
public func lmx_session_generate_text(_ session: OpaquePointer?, _ tokenizer: OpaquePointer?, _ prompt: UnsafePointer<CChar>?,
                                      _ promptLength: Int, _ gen: UnsafePointer<lmx_generate_params>?,
                                      _ text: UnsafePointer<lmx_text_params>?, _ out: UnsafeMutablePointer<CChar>?,
                                      _ capacity: Int, _ needed: UnsafeMutablePointer<Int>?,
                                      _ stopReason: UnsafeMutablePointer<UInt32>?) -> lmx_status {
    withStatus {
        let session = try Handles.resolve(session, .session, as: Session.self, "session")
        let tokenizer = try resolveTokenizer(tokenizer)
        let needed = try Arguments.required(needed, "needed")
        needed.pointee = 0
        let capacity = Arguments.capacity(capacity)
        if capacity > 0, out == nil { throw LoRAMixerError.invalidArgument("'out' must not be NULL when capacity is \(capacity)") }
        let promptText = try Arguments.text(prompt, length: promptLength, "prompt")
        let gen = try Arguments.params(gen, "lmx_generate_params", minimum: Arguments.MinimumSize.generateParams,
                                       default: lmx_generate_params_default)
        let params = try Arguments.params(text, "lmx_text_params", minimum: Arguments.MinimumSize.textParams,
                                          default: lmx_text_params_default)
        guard params.flags & ~knownTextFlags == 0 else {
            throw LoRAMixerError.invalidArgument("'text->flags' has unknown bits 0x\(String(params.flags & ~knownTextFlags, radix: 16)) (LMX_TEXT_* are 0x1f)")
        }
        let flags = params.flags
        let stops = try Arguments.array(gen.stop_tokens, count: gen.n_stop_tokens, limit: session.model.config.vocabSize,
                                        "gen.stop_tokens", allowEmpty: true)
        try tokenizer.checkFits(session.model)
        let ids = try session.promptTokens(promptText, tokenizer: tokenizer, chat: flags & UInt32(LMX_TEXT_CHAT) != 0,
                                           addSpecialTokens: flags & UInt32(LMX_TEXT_NO_BOS) == 0,
                                           parseSpecial: flags & UInt32(LMX_TEXT_PARSE_SPECIAL) != 0)
        if !ids.isEmpty { try session.checkRoom(for: ids.count) }
        let options = Session.GenerationOptions(
            maxTokens: Int(gen.max_tokens),
            sampling: SamplingOptions(temperature: gen.temperature, topK: Int(gen.top_k), topP: gen.top_p, seed: gen.seed),
            stopTokens: Set(stops))
        let onToken = gen.on_token, tokenData = gen.user_data
        let onText = params.on_text, textData = params.user_data
        let result = try session.generateText(
            prompt: ids, tokenizer: tokenizer, options: options,
            stopAtEndOfTurn: flags & UInt32(LMX_TEXT_IGNORE_END_OF_TURN) == 0,
            skipSpecialTokens: flags & UInt32(LMX_TEXT_SHOW_SPECIAL) == 0,
            onToken: { token in onToken.map { $0(token, tokenData) == 0 } ?? true },
            onText: { piece in onText.map { callback in piece.withCString { callback($0, piece.utf8.count, textData) == 0 } } ?? true })
        let reason: Int
        switch result.stopReason {
        case .stopToken: reason = LMX_STOP_END_OF_TURN
        case .maxTokens: reason = LMX_STOP_MAX_TOKENS
        case .stoppedByCaller: reason = LMX_STOP_CALLBACK
        case .contextFull: reason = LMX_STOP_CONTEXT_FULL
        }
        stopReason?.pointee = UInt32(reason)
        try copyString(result.text, into: out, capacity: capacity, needed: needed)
    }
}
