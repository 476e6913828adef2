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

    /// The ids of a text prompt for this session. With `chat`, `text` is a user message: the
    /// tokenizer's chat template is applied with the generation prompt, and the result is
    /// tokenized as transformers does (no special tokens added, those written by the template
    /// recognised). Otherwise `text` is tokenized with BOS/EOS added when `addSpecialTokens` and
    /// the session is empty (a continuation does not get a second BOS), special tokens written in
    /// it recognised only when `parseSpecial` (so that user text cannot forge control tokens).
    public func promptTokens(_ text: String, tokenizer: Tokenizer, chat: Bool, addSpecialTokens: Bool = true,
                             parseSpecial: Bool = false) throws -> [Int32] {
        guard !text.isEmpty else { return [] }
        if chat {
            return try tokenizer.encodeChat(messages: Tokenizer.messages([(role: "user", content: text)]), addGenerationPrompt: true)
        }
        return try tokenizer.encode(text, addSpecialTokens: addSpecialTokens && position == 0, parseSpecial: parseSpecial)
    }

    /// What `generateText` produced: the tokens (without the stop token) and their text.
    public struct TextGeneration: Sendable {
        public var tokens: [Int32]
        public var text: String
        public var stopReason: StopReason
    }

    /// Evaluates `prompt` (ids; empty continues the session), then samples as `generate` does,
    /// also stopping at the tokenizer's end-of-turn ids when `stopAtEndOfTurn` (EOS, the ids of
    /// `generation_config.json`, `<|eot_id|>`-style tokens). `onToken` sees each token and
    /// `onText` each piece of text as soon as it is whole UTF-8 (special tokens hidden when
    /// `skipSpecialTokens`); either may return false to stop. The session is left as `generate`
    /// leaves it, also on failure.
    public func generateText(prompt: [Int32], tokenizer: Tokenizer, options: GenerationOptions,
                             stopAtEndOfTurn: Bool = true, skipSpecialTokens: Bool = true,
                             onToken: (Int32) -> Bool = { _ in true },
                             onText: (String) -> Bool = { _ in true }) throws -> TextGeneration {
        try tokenizer.checkFits(model)
        var options = options
        if stopAtEndOfTurn {
            let vocab = model.config.vocabSize
            options.stopTokens.formUnion(tokenizer.specialTokens.endOfTurn.filter { Int($0) < vocab })
        }
        var stream = TokenTextStream(tokenizer: tokenizer, skipSpecialTokens: skipSpecialTokens)
        var text = ""
        var callerStopped = false
        let tokens = try generate(prompt: prompt, options: options) { token in
            if !onToken(token) { callerStopped = true }
            let piece = stream.append(token)
            if !piece.isEmpty {
                text += piece
                if !onText(piece) { callerStopped = true }
            }
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
