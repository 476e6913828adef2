/// A GGUF file's tokenizer. The metadata llama.cpp's converter writes (`tokenizer.ggml.*`) is
/// turned back into the tokenizer.json document it came from, so that one implementation — the
/// one tested against `tokenizers` — serves both: `gpt2` files become byte-level BPE with the
/// pre-tokenizer `tokenizer.ggml.pre` names; `llama` files become SentencePiece-style BPE with
/// byte fallback, whose merges are recovered from the scores as transformers' converter does.
extension Tokenizer {
    public convenience init(gguf file: GGUFFile) throws {
        let context = "\(file.path): tokenizer"
        guard let kind = try file.string("tokenizer.ggml.model") else {
            throw LoRAMixerError.format("\(context): the file has no tokenizer (no tokenizer.ggml.model)")
        }
        guard let tokens = try file.strings("tokenizer.ggml.tokens") else {
            throw LoRAMixerError.format("\(context): tokenizer.ggml.tokens is missing")
        }
        guard tokens.count <= Int(Int32.max) else {
            throw LoRAMixerError.format("\(context): tokenizer.ggml.tokens has \(tokens.count) entries, more than 32-bit ids can number")
        }
        let types = try file.ints("tokenizer.ggml.token_type")
        if let types, types.count != tokens.count {
            throw LoRAMixerError.format("\(context): tokenizer.ggml.token_type has \(types.count) entries, tokenizer.ggml.tokens \(tokens.count)")
        }
        let model: JSONValue
        let preTokenizer: JSONValue
        let normalizer: JSONValue
        let decoder: JSONValue
        switch kind {
        case "gpt2":
            guard let merges = try file.strings("tokenizer.ggml.merges") else {
                throw LoRAMixerError.format("\(context): a gpt2 tokenizer needs tokenizer.ggml.merges")
            }
            model = Self.bpeModel(tokens: tokens, merges: merges.map(JSONValue.string), byteFallback: false, unknown: nil)
            preTokenizer = try Self.byteLevelPreTokenizer(try file.string("tokenizer.ggml.pre") ?? "default", context: context)
            normalizer = .null
            decoder = Self.object(["type": .string("ByteLevel"), "add_prefix_space": .bool(true), "trim_offsets": .bool(true), "use_regex": .bool(true)])
        case "llama":
            guard let scores = try file.floats("tokenizer.ggml.scores") else {
                throw LoRAMixerError.format("\(context): a llama tokenizer needs tokenizer.ggml.scores")
            }
            guard scores.count == tokens.count else {
                throw LoRAMixerError.format("\(context): tokenizer.ggml.scores has \(scores.count) entries, tokenizer.ggml.tokens \(tokens.count)")
            }
            let unknownID = try file.int("tokenizer.ggml.unknown_token_id") ?? types?.firstIndex(of: GGUFTokenType.unknown)
            let unknown = try unknownID.map { try Self.checkedID($0, tokens.count, "tokenizer.ggml.unknown_token_id", context) }
            model = Self.bpeModel(tokens: tokens, merges: Self.mergesFromScores(tokens: tokens, scores: scores, types: types),
                                  byteFallback: true, unknown: unknown.map { tokens[Int($0)] })
            preTokenizer = .null
            let addSpacePrefix = try file.bool("tokenizer.ggml.add_space_prefix") ?? true
            normalizer = Self.sentencePieceNormalizer(addSpacePrefix: addSpacePrefix)
            decoder = Self.sentencePieceDecoder(addSpacePrefix: addSpacePrefix)
        default:
            throw LoRAMixerError.format("\(context): tokenizer.ggml.model \(quoted(kind)) is not supported (supported: gpt2, llama)")
        }

        var added: [JSONValue] = []
        for (id, type) in (types ?? []).enumerated() where type == GGUFTokenType.control || type == GGUFTokenType.userDefined {
            let special = type == GGUFTokenType.control
            added.append(Self.object([
                "id": JSONValue(id), "content": .string(tokens[id]), "single_word": .bool(false),
                "lstrip": .bool(false), "rstrip": .bool(false), "normalized": .bool(!special), "special": .bool(special),
            ]))
        }

        func specialID(_ name: String) throws -> Int32? {
            try file.int("tokenizer.ggml.\(name)_token_id").map { try Self.checkedID($0, tokens.count, "tokenizer.ggml.\(name)_token_id", context) }
        }
        let bos = try specialID("bos"), eos = try specialID("eos"), pad = try specialID("pad")
        let addBOS = try file.bool("tokenizer.ggml.add_bos_token") ?? (kind == "llama")
        let addEOS = try file.bool("tokenizer.ggml.add_eos_token") ?? false
        var configuration = TokenizerConfiguration(
            bosToken: bos.map { tokens[Int($0)] }, eosToken: eos.map { tokens[Int($0)] },
            padToken: pad.map { tokens[Int($0)] }, chatTemplate: try file.string("tokenizer.chat_template"))
        if let eot = try specialID("eot") { configuration.generationEOS.append(eot) }
        if let eom = try specialID("eom") { configuration.generationEOS.append(eom) }

        var root = JSONObject()
        root["added_tokens"] = .array(added)
        root["normalizer"] = normalizer
        root["pre_tokenizer"] = preTokenizer
        root["post_processor"] = try Self.templateProcessor(bos: addBOS ? bos : nil, eos: addEOS ? eos : nil, tokens: tokens,
                                                             context: context)
        root["decoder"] = decoder
        root["model"] = model
        try self.init(document: .object(root), context: context, configuration: configuration)
    }

    private static func object(_ members: KeyValuePairs<String, JSONValue>) -> JSONValue {
        var object = JSONObject()
        for (key, value) in members { object[key] = value }
        return .object(object)
    }

    private static func checkedID(_ id: Int, _ count: Int, _ key: String, _ context: String) throws -> Int32 {
        guard id >= 0, id < count else {
            throw LoRAMixerError.format("\(context): \(key) = \(id) is outside the vocabulary (\(count) tokens)")
        }
        return Int32(id)
    }

    private static func bpeModel(tokens: [String], merges: [JSONValue], byteFallback: Bool, unknown: String?) -> JSONValue {
        var vocabulary = JSONObject()
        for (id, token) in tokens.enumerated() where vocabulary[token] == nil {
            vocabulary[token] = JSONValue(id)
        }
        return object([
            "type": .string("BPE"), "dropout": .null, "unk_token": unknown.map(JSONValue.string) ?? .null,
            "continuing_subword_prefix": .null, "end_of_word_suffix": .null, "fuse_unk": .bool(byteFallback),
            "byte_fallback": .bool(byteFallback), "ignore_merges": .bool(false),
            "vocab": .object(vocabulary), "merges": .array(merges),
        ])
    }

    /// The pre-tokenizer of the Hugging Face files llama.cpp names by `tokenizer.ggml.pre`.
    private static func byteLevelPreTokenizer(_ name: String, context: String) throws -> JSONValue {
        func byteLevel(regex: Bool) -> JSONValue {
            object(["type": .string("ByteLevel"), "add_prefix_space": .bool(false), "trim_offsets": .bool(true), "use_regex": .bool(regex)])
        }
        func split(_ pattern: SplitPattern) -> JSONValue {
            object(["type": .string("Split"), "pattern": object(["Regex": .string(pattern.regex)]),
                    "behavior": .string("Isolated"), "invert": .bool(false)])
        }
        func sequence(_ steps: [JSONValue]) -> JSONValue { object(["type": .string("Sequence"), "pretokenizers": .array(steps)]) }
        switch name {
        case "gpt-2":
            return byteLevel(regex: true)
        case "llama-bpe", "llama3":
            return sequence([split(.llama3), byteLevel(regex: false)])
        case "qwen2":
            return sequence([split(.qwen2), byteLevel(regex: false)])
        case "smollm":
            return sequence([object(["type": .string("Digits"), "individual_digits": .bool(true)]), byteLevel(regex: true)])
        default:
            throw LoRAMixerError.format("\(context): tokenizer.ggml.pre \(quoted(name)) is not supported (supported: gpt-2, llama-bpe, qwen2, smollm)")
        }
    }

    /// What transformers writes for a Llama 2 style tokenizer: a `▁` before the text and for
    /// every space.
    private static func sentencePieceNormalizer(addSpacePrefix: Bool) -> JSONValue {
        let replace = object(["type": .string("Replace"), "pattern": object(["String": .string(" ")]), "content": .string("▁")])
        guard addSpacePrefix else { return replace }
        let prepend = object(["type": .string("Prepend"), "prepend": .string("▁")])
        return object(["type": .string("Sequence"), "normalizers": .array([prepend, replace])])
    }

    private static func sentencePieceDecoder(addSpacePrefix: Bool) -> JSONValue {
        var steps: [JSONValue] = [
            object(["type": .string("Replace"), "pattern": object(["String": .string("▁")]), "content": .string(" ")]),
            object(["type": .string("ByteFallback")]),
            object(["type": .string("Fuse")]),
        ]
        if addSpacePrefix {
            steps.append(object(["type": .string("Strip"), "content": .string(" "), "start": JSONValue(1), "stop": JSONValue(0)]))
        }
        return object(["type": .string("Sequence"), "decoders": .array(steps)])
    }

    private static func templateProcessor(bos: Int32?, eos: Int32?, tokens: [String], context: String) throws -> JSONValue {
        guard bos != nil || eos != nil else { return .null }
        var single: [JSONValue] = []
        var specials = JSONObject()
        func special(_ id: Int32) -> JSONValue {
            let text = tokens[Int(id)]
            specials[text] = object(["id": .string(text), "ids": .array([JSONValue(Int(id))]), "tokens": .array([.string(text)])])
            return object(["SpecialToken": object(["id": .string(text), "type_id": JSONValue(0)])])
        }
        if let bos { single.append(special(bos)) }
        single.append(object(["Sequence": object(["id": .string("A"), "type_id": JSONValue(0)])]))
        if let eos { single.append(special(eos)) }
        return object(["type": .string("TemplateProcessing"), "single": .array(single), "pair": .array(single),
                       "special_tokens": .object(specials)])
    }

    /// The merges of a SentencePiece vocabulary, as transformers' `SentencePieceExtractor`
    /// derives them: every split of a token into two vocabulary entries is a merge, ordered by
    /// the merged token's score (highest first), ties by the longer left part, then the longer
    /// right part, then vocabulary order (`generate_merges`' stable sort). Only normal tokens
    /// take part (control, byte and unused entries never merge).
    static func mergesFromScores(tokens: [String], scores: [Float], types: [Int]?) -> [JSONValue] {
        var ids: [String: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where ids[token] == nil && (types?[id] ?? GGUFTokenType.normal) == GGUFTokenType.normal {
            ids[token] = id
        }
        var merges: [(left: String, right: String, score: Float, leftLength: Int, rightLength: Int, order: Int)] = []
        for (id, token) in tokens.enumerated() where ids[token] == id {
            let scalars = Array(token.unicodeScalars)
            guard scalars.count > 1 else { continue }
            var local: [(left: String, right: String, leftID: Int, rightID: Int)] = []
            for cut in 1..<scalars.count {
                let left = String(String.UnicodeScalarView(scalars[..<cut]))
                let right = String(String.UnicodeScalarView(scalars[cut...]))
                if let leftID = ids[left], let rightID = ids[right] { local.append((left, right, leftID, rightID)) }
            }
            local.sort { ($0.leftID, $0.rightID) < ($1.leftID, $1.rightID) }
            for entry in local {
                let leftLength = entry.left.unicodeScalars.count
                merges.append((entry.left, entry.right, scores[id], leftLength, scalars.count - leftLength, merges.count))
            }
        }
        merges.sort {
            if $0.score != $1.score { return $0.score > $1.score }
            if $0.leftLength != $1.leftLength { return $0.leftLength > $1.leftLength }
            if $0.rightLength != $1.rightLength { return $0.rightLength > $1.rightLength }
            return $0.order < $1.order
        }
        return merges.map { .array([.string($0.left), .string($0.right)]) }
    }
}

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
enum GGUFTokenType {
    static let normal = 1
    static let unknown = 2
    static let control = 3
    static let userDefined = 4
    static let unused = 5
    static let byte = 6
}
