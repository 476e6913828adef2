/// Training text through the model's tokenizer: `text`, `prompt`/`completion` and chat
/// `messages` (rendered with the chat template). Models without a tokenizer keep the UTF-8 bytes.
extension TrainingExample {
    /// The examples of the JSON Lines file `path` for `model`: text is encoded with the model's
    /// tokenizer when its folder has one (tokenizer.json), as UTF-8 bytes otherwise.
    public static func load(path: String, model: LanguageModel) throws -> [TrainingExample] {
        let config = model.config
        let tokenizer = model.hasTokenizer ? try model.tokenizer() : nil
        return try load(path: path, vocabSize: config.vocabSize, maxLength: config.maxPositions, tokenizer: tokenizer)
    }

    /// A text field's ids: `text` and `prompt` with the special tokens the tokenizer's
    /// post-processor adds (BOS), `completion` without (it continues the prompt); special-token
    /// text such as `<|eot_id|>` is recognised in all three.
    static func encode(_ string: String, key: String, context: String, tokenizer: Tokenizer) throws -> [Int32] {
        do {
            return try tokenizer.encode(string, addSpecialTokens: key != "completion", parseSpecial: true)
        } catch let error as LoRAMixerError {
            throw LoRAMixerError(error.kind, "\(context): '\(key)': \(error.message)")
        }
    }

    /// `{"messages": [{"role": ..., "content": ...}, ...]}`: the conversation rendered with the
    /// chat template (no generation prompt), the loss on every assistant message: the text the
    /// template writes for it after the generation prompt, its end-of-turn text included. The
    /// rendering is cut at those boundaries (rendering the messages before each assistant one
    /// with the generation prompt, and through it) and each piece is encoded on its own, so the
    /// template must render a conversation as the continuation of its beginning.
    init(messages value: JSONValue, task: String?, context: String, tokenizer: Tokenizer?) throws {
        guard let tokenizer else {
            throw LoRAMixerError.invalidArgument("\(context): 'messages' needs the model's tokenizer and chat template, and the model has no tokenizer.json; give text or token ids")
        }
        guard tokenizer.chatTemplateSource != nil else {
            throw LoRAMixerError.invalidArgument("\(context): 'messages' needs a chat template, and the model's tokenizer has none (tokenizer_config.json has no chat_template)")
        }
        guard let messages = value.array, !messages.isEmpty else {
            throw LoRAMixerError.format("\(context): 'messages' must be a non-empty array of {\"role\", \"content\"} objects")
        }
        var assistant: [Int] = []
        for (index, message) in messages.enumerated() {
            guard let role = message.object?["role"]?.string, message.object?["content"] != nil else {
                throw LoRAMixerError.format("\(context): message \(index) (0-based) must be an object with a string \"role\" and a \"content\"")
            }
            if role == "assistant" { assistant.append(index) }
        }
        guard !assistant.isEmpty else {
            throw LoRAMixerError.invalidArgument("\(context): 'messages' has no assistant message (the loss is on the assistant messages)")
        }
        func render(_ count: Int, generationPrompt: Bool) throws -> [UInt8] {
            do {
                return Array(try tokenizer.applyChatTemplate(messages: Array(messages[..<count]),
                                                             addGenerationPrompt: generationPrompt).utf8)
            } catch let error as LoRAMixerError {
                throw LoRAMixerError(error.kind, "\(context): chat template: \(error.message)")
            }
        }
        var tokens: [Int32] = []
        var targets: [Bool] = []
        var done = 0
        func add(_ text: [UInt8], from start: Int, target: Bool) throws {
            guard text.count > start else { return }
            let piece = String(decoding: text[start...], as: UTF8.self)
            let ids = try tokenizer.encode(piece, addSpecialTokens: false, parseSpecial: true)
            tokens += ids
            targets += Array(repeating: target, count: ids.count)
        }
        let whole = try render(messages.count, generationPrompt: false)
        for index in assistant {
            let before = try render(index, generationPrompt: true)
            let through = try render(index + 1, generationPrompt: false)
            guard before.starts(with: whole.prefix(done)), through.starts(with: before), whole.starts(with: through),
                  through.count > before.count else {
                throw LoRAMixerError.format("\(context): the chat template does not render message \(index) (0-based) as a continuation of the messages before it, so its tokens cannot be told apart; give prompt/completion instead")
            }
            try add(before, from: done, target: false)
            try add(through, from: before.count, target: true)
            done = through.count
        }
        try add(whole, from: done, target: false)
        guard tokens.count >= 2 else { throw LoRAMixerError.invalidArgument("\(context): an example needs at least 2 tokens") }
        targets[0] = false
        guard targets.contains(true) else {
            throw LoRAMixerError.invalidArgument("\(context): the assistant messages have no tokens to train on")
        }
        self.init(tokens: tokens, targets: targets, task: task)
    }
}
