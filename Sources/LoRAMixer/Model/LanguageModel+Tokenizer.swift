import Synchronization

/// The tokenizer a model folder holds, read once on first use and then shared (a `Tokenizer`
/// is immutable), so that every session and host call sees the same one.
final class TokenizerCache: Sendable {
    private let slot = Mutex<Tokenizer?>(nil)

    func get(_ load: () throws -> Tokenizer) throws -> Tokenizer {
        try slot.withLock { cached in
            if let cached { return cached }
            let tokenizer = try load()
            cached = tokenizer
            return tokenizer
        }
    }
}

extension LanguageModel {
    /// Whether the model folder has a tokenizer (`tokenizer.json`).
    public var hasTokenizer: Bool { SystemFiles.exists(SystemFiles.join(directory, "tokenizer.json")) }

    /// The model folder's tokenizer with its configuration files, read on first call. Throws
    /// `.notFound` when the folder has no tokenizer.json, and the tokenizer's own load errors;
    /// a failed load is retried by the next call.
    public func tokenizer() throws -> Tokenizer {
        try tokenizerCache.get {
            guard hasTokenizer else {
                throw LoRAMixerError.notFound("\(directory): the model has no tokenizer (no tokenizer.json in its folder)")
            }
            let tokenizer = try Tokenizer(directory: directory)
            try tokenizer.checkFits(self)
            return tokenizer
        }
    }
}

extension Tokenizer {
    /// Throws `.shape` when the tokenizer can produce ids the model has no embedding for (a
    /// tokenizer of another model).
    public func checkFits(_ model: LanguageModel) throws {
        if let largestID, Int(largestID) >= model.config.vocabSize {
            throw LoRAMixerError.shape("the tokenizer has ids up to \(largestID), but the model's vocabulary has \(model.config.vocabSize) entries (a tokenizer of another model?)")
        }
    }
}
