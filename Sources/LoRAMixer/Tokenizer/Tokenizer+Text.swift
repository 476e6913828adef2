/// Loading a tokenizer by path, applying its chat template, and decoding a token stream.
extension Tokenizer {
    /// A model folder (its `tokenizer.json` and configuration files) or a `.gguf` file (the
    /// tokenizer in its metadata; a file without tensors is enough).
    public static func load(path: String) throws -> Tokenizer {
        if path.hasSuffix(".gguf") {
            return try Tokenizer(gguf: GGUFFile(path: path))
        }
        return try Tokenizer(directory: path)
    }

    /// Renders the chat template for `messages` (objects with a string `role` and a `content`),
    /// with the tokenizer's BOS and EOS texts, as transformers' `apply_chat_template(tokenize=
    /// False)` does. Encode the result with `addSpecialTokens: false`: the template writes BOS
    /// itself. Throws `.state` when the tokenizer has no chat template, and the template's errors.
    public func applyChatTemplate(messages: [JSONValue], addGenerationPrompt: Bool,
                                  extra: [String: JSONValue] = [:]) throws -> String {
        guard let chatTemplateSource else {
            throw LoRAMixerError.state("the tokenizer has no chat template (tokenizer_config.json or the GGUF metadata has no chat_template)")
        }
        return try ChatTemplate(source: chatTemplateSource).render(
            messages: messages, addGenerationPrompt: addGenerationPrompt,
            bosToken: specialTokens.bosText, eosToken: specialTokens.eosText, extra: extra)
    }

    /// The ids of `messages` rendered with the chat template, as transformers'
    /// `apply_chat_template(tokenize=True)` gives them: no special tokens added (the template
    /// writes BOS), the special tokens the template writes recognised.
    public func encodeChat(messages: [JSONValue], addGenerationPrompt: Bool) throws -> [Int32] {
        try encode(applyChatTemplate(messages: messages, addGenerationPrompt: addGenerationPrompt),
                   addSpecialTokens: false, parseSpecial: true)
    }

    /// `[{"role": role, "content": content}]` for each pair.
    public static func messages(_ pairs: [(role: String, content: String)]) -> [JSONValue] {
        pairs.map { pair in
            var object = JSONObject()
            object["role"] = .string(pair.role)
            object["content"] = .string(pair.content)
            return .object(object)
        }
    }
}

/// Decodes generated tokens one at a time into text that is always whole UTF-8: a character
/// whose bytes span several tokens comes out with its last token. Special tokens are skipped
/// or shown as their text.
public struct TokenTextStream: Sendable {
    public let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    private var assembler = UTF8Assembler()

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// The text that `id` completes (often its own text, empty while a character is cut).
    /// Unknown ids add nothing.
    public mutating func append(_ id: Int32) -> String {
        if skipSpecialTokens, tokenizer.isSpecial(id) { return "" }
        return assembler.append(tokenizer.tokenToBytes(id) ?? [])
    }

    /// What is held back (an unfinished character, as U+FFFD); call at the end of the stream.
    public mutating func finish() -> String { assembler.finish() }
}
