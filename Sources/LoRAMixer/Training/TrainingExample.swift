import Glibc

/// One training example: token ids, which of them are targets (the loss is on predicting them),
/// and an optional task label.
public struct TrainingExample: Sendable, Equatable {
    public var tokens: [Int32]
    /// Per position: whether predicting this token counts in the loss. Position 0 never does.
    public var targets: [Bool]
    public var task: String?
    /// Tokens of the prompt (before the first target), for generation in evaluation.
    public var promptLength: Int
    /// Where the example came from (`file:line`), for messages; not part of its value.
    public var origin: String?

    public init(tokens: [Int32], targets: [Bool], task: String?) {
        self.tokens = tokens
        self.targets = targets
        self.task = task
        promptLength = targets.firstIndex(of: true) ?? tokens.count
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        (lhs.tokens, lhs.targets, lhs.task, lhs.promptLength) == (rhs.tokens, rhs.targets, rhs.task, rhs.promptLength)
    }

    /// Reads JSON Lines (docs/ARCHITECTURE.md#training-data): one object per line, either `{"text": ...}` (loss on
    /// every token after the first) or `{"prompt": ..., "completion": ...}` (loss on the completion),
    /// or `{"messages": [...]}` (rendered with the chat template, loss on the assistant turns; needs
    /// `tokenizer`), with an optional `"task"`. With `tokenizer` text is encoded by it
    /// (TrainingExample+Tokenizer.swift); without, as its UTF-8 bytes, which are the token ids of
    /// byte-level models (vocab >= 256). Ids can be given instead: `{"tokens": [...]}` or
    /// `{"prompt_tokens": [...], "completion_tokens": [...]}`. Blank lines are skipped; errors
    /// name the file and line.
    public static func load(path: String, vocabSize: Int, maxLength: Int, tokenizer: Tokenizer? = nil) throws -> [TrainingExample] {
        let data = try SystemFiles.read(path)
        var examples: [TrainingExample] = []
        for (index, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let where_ = "\(path):\(index + 1)"
            guard line.contains(where: { !($0 == 32 || $0 == 9 || $0 == 13) }) else { continue }
            let json = try JSONParser.parse(Array(line), context: where_)
            var example = try TrainingExample(json: json, context: where_, vocabSize: vocabSize, tokenizer: tokenizer)
            example.origin = where_
            guard example.tokens.count <= maxLength else {
                throw LoRAMixerError.invalidArgument("\(where_): \(example.tokens.count) tokens, more than the model's \(maxLength) positions")
            }
            examples.append(example)
        }
        guard !examples.isEmpty else { throw LoRAMixerError.invalidArgument("\(path): no examples") }
        return examples
    }

    init(json: JSONValue, context: String, vocabSize: Int, tokenizer: Tokenizer? = nil) throws {
        guard let object = json.object else { throw LoRAMixerError.format("\(context): a line must be a JSON object") }
        func text(_ key: String) throws -> [Int32]? {
            guard let value = object[key] else { return nil }
            guard let string = value.string else { throw LoRAMixerError.format("\(context): '\(key)' must be a string") }
            if let tokenizer { return try Self.encode(string, key: key, context: context, tokenizer: tokenizer) }
            guard vocabSize >= 256 else {
                throw LoRAMixerError.invalidArgument("\(context): '\(key)' is text, encoded as UTF-8 bytes, but the model's vocabulary has only \(vocabSize) ids; give token ids ('tokens', 'prompt_tokens', 'completion_tokens')")
            }
            return string.utf8.map { Int32($0) }
        }
        func ids(_ key: String) throws -> [Int32]? {
            guard let value = object[key] else { return nil }
            guard let array = value.array else { throw LoRAMixerError.format("\(context): '\(key)' must be an array of token ids") }
            return try array.map { element in
                guard let id = element.int, (0..<vocabSize).contains(id) else {
                    throw LoRAMixerError.invalidArgument("\(context): '\(key)' holds \(element.serialized()), not a token id in 0..<\(vocabSize)")
                }
                return Int32(id)
            }
        }
        let task: String?
        switch object["task"] {
        case nil, .null?: task = nil
        case .string(let label)?: task = label
        case let other?: throw LoRAMixerError.format("\(context): 'task' must be a string, not \(other.kindName)")
        }
        if let messages = object["messages"] {
            let others = ["text", "tokens", "prompt", "completion", "prompt_tokens", "completion_tokens"].filter { object[$0] != nil }
            guard others.isEmpty else {
                throw LoRAMixerError.format("\(context): give either messages or \(others.joined(separator: "/")), not both")
            }
            try self.init(messages: messages, task: task, context: context, tokenizer: tokenizer)
            return
        }
        let whole = try text("text") ?? ids("tokens")
        let prompt = try text("prompt") ?? ids("prompt_tokens")
        let completion = try text("completion") ?? ids("completion_tokens")
        if let whole {
            guard prompt == nil, completion == nil else {
                throw LoRAMixerError.format("\(context): give either text/tokens or prompt/completion, not both")
            }
            guard whole.count >= 2 else { throw LoRAMixerError.invalidArgument("\(context): an example needs at least 2 tokens") }
            self.init(tokens: whole, targets: [false] + Array(repeating: true, count: whole.count - 1), task: task)
        } else if let prompt, let completion {
            guard !prompt.isEmpty, !completion.isEmpty else {
                throw LoRAMixerError.invalidArgument("\(context): prompt and completion must both be non-empty")
            }
            self.init(tokens: prompt + completion,
                      targets: Array(repeating: false, count: prompt.count) + Array(repeating: true, count: completion.count), task: task)
        } else {
            throw LoRAMixerError.format("\(context): expected \"text\", \"tokens\", \"prompt\" and \"completion\" (or their _tokens forms), or \"messages\"")
        }
    }
}

/// A mini-batch packed end to end: every per-token operation runs on all examples at once, and
/// attention and the router's running context restart at each example's first token, which is
/// what a right-padded batch with a padding mask computes, without the padding.
struct PackedBatch {
    let tokens: [Int32]
    /// Each example's rows.
    let segments: [Range<Int>]
    /// Position of each row inside its example.
    let positions: [Int]
    /// Rows whose next token is a target, and those next tokens.
    let targetRows: [Int]
    let targetTokens: [Int32]
    /// Per row, the expert index of its example's task (label routing), or -1.
    let labels: [Int]

    var count: Int { tokens.count }

    init(_ examples: [TrainingExample], labelOf: (TrainingExample) -> Int) {
        var tokens: [Int32] = [], segments: [Range<Int>] = [], positions: [Int] = []
        var targetRows: [Int] = [], targetTokens: [Int32] = [], labels: [Int] = []
        for example in examples {
            let start = tokens.count
            for t in 1..<example.tokens.count where example.targets[t] {
                targetRows.append(start + t - 1)
                targetTokens.append(example.tokens[t])
            }
            tokens += example.tokens
            positions += 0..<example.tokens.count
            labels += Array(repeating: labelOf(example), count: example.tokens.count)
            segments.append(start..<tokens.count)
        }
        (self.tokens, self.segments, self.positions) = (tokens, segments, positions)
        (self.targetRows, self.targetTokens, self.labels) = (targetRows, targetTokens, labels)
    }
}
