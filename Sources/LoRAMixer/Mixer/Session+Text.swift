/// Generation with text out: tokens are decoded as they are sampled, and the text is handed out
/// in UTF-8-complete pieces.
extension Session {
    /// Why a text generation ended.
    public enum StopReason: String, Sendable {
        /// A stop token was sampled (an end-of-turn id or one of `options.stopTokens`).
        case stopToken = "stop"
        /// `options.maxTokens` tokens were generated.
        case maxTokens = "length"
        /// The text callback returned false.
        case stoppedByCaller = "caller"
        /// The context is full.
        case contextFull = "context"
    }

    /// What `generateText` produced: the tokens (without the stop token) and their text.
    public struct TextGeneration: Sendable {
        public var tokens: [Int32]
        public var text: String
        public var stopReason: StopReason
    }

    /// Evaluates `prompt` (ids; empty continues the session), then samples as `generate` does,
    /// also stopping at the tokenizer's end-of-turn ids when `stopAtEndOfTurn` (EOS, the ids of
    /// `generation_config.json`, `<|eot_id|>`-style tokens). `onText` receives each piece of
    /// text as soon as it is whole UTF-8 (special tokens hidden when `skipSpecialTokens`) and may
    /// return false to stop. The session is left as `generate` leaves it, also on failure.
    public func generateText(prompt: [Int32], tokenizer: Tokenizer, options: GenerationOptions,
                             stopAtEndOfTurn: Bool = true, skipSpecialTokens: Bool = true,
                             onText: (String) -> Bool = { _ in true }) throws -> TextGeneration {
        var options = options
        if stopAtEndOfTurn {
            let vocab = model.config.vocabSize
            options.stopTokens.formUnion(tokenizer.specialTokens.endOfTurn.filter { Int($0) < vocab })
        }
        var stream = TokenTextStream(tokenizer: tokenizer, skipSpecialTokens: skipSpecialTokens)
        var text = ""
        var callerStopped = false
        let tokens = try generate(prompt: prompt, options: options) { token in
            let piece = stream.append(token)
            guard !piece.isEmpty else { return true }
            text += piece
            callerStopped = !onText(piece)
            return !callerStopped
        }
        let rest = stream.finish()
        if !rest.isEmpty, !callerStopped {
            text += rest
            _ = onText(rest)
        }
        let reason: StopReason
        if callerStopped {
            reason = .stoppedByCaller
        } else if tokens.count >= options.maxTokens {
            reason = .maxTokens
        } else if position >= contextLength {
            reason = .contextFull
        } else {
            reason = .stopToken
        }
        return TextGeneration(tokens: tokens, text: text, stopReason: reason)
    }
}
