/// A Hugging Face tokenizer read from `tokenizer.json`, producing the same ids and text as the
/// `tokenizers` library. This part supports BPE, byte-level (GPT-2, Llama 3, Qwen2, SmolLM style)
/// and SentencePiece-style (Llama 2, Mistral, TinyLlama: byte_fallback, fuse_unk): normalizers
/// NFC, Prepend, Replace and Sequence; pre-tokenizers ByteLevel, Split (the GPT-2, Llama 3 and
/// Qwen2 regexes), Digits, Metaspace and Sequence; post-processors ByteLevel, TemplateProcessing
/// and Sequence; decoders ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace and Sequence;
/// added tokens with lstrip/rstrip/single_word/normalized. Anything else is refused at load with
/// an error naming the component.
public final class Tokenizer: Sendable {
    let model: BPEModel
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: PostProcessor?
    let decoder: TokenDecoder
    let addedTokens: AddedTokenMatcher
    /// The added tokens that are not special: what `parseSpecial: false` still recognises.
    let plainAddedTokens: AddedTokenMatcher
    /// Added tokens by id, which decoding looks up before the model's vocabulary.
    let addedByID: [Int32: AddedToken]
    /// The text decoding gives each added token: its content, normalized when it is matched
    /// normalized (as `tokenizers`' `id_to_token` answers).
    let addedText: [Int32: String]

    /// The number of distinct ids: the model's vocabulary and the added tokens together (what
    /// `tokenizers`' `get_vocab_size(with_added_tokens=True)` reports).
    public let vocabularySize: Int
    /// The largest id the tokenizer can produce (nil for an empty vocabulary).
    public let largestID: Int32?
    /// The ids of the added tokens marked `special`, in ascending order.
    public let specialTokenIDs: [Int32]
    /// Every added token, in the file's order.
    public var addedTokenList: [AddedToken] { addedTokens.tokens }
    /// BOS/EOS/PAD/UNK and the end-of-turn ids, from the configuration files beside the tokenizer.
    public let specialTokens: SpecialTokens
    /// The Jinja chat template, when the configuration has one (compiled when applied, so that a
    /// template outside the supported subset does not stop the tokenizer from loading).
    public let chatTemplateSource: String?

    /// Reads `tokenizer.json` from a model folder, with the special tokens and chat template of
    /// its `tokenizer_config.json`, `special_tokens_map.json` and `generation_config.json`.
    public convenience init(directory: String) throws {
        try SystemFiles.requireFolder(directory, "model folder")
        let path = SystemFiles.join(directory, "tokenizer.json")
        guard SystemFiles.exists(path) else {
            throw LoRAMixerError.io("\(directory): the folder has no tokenizer.json")
        }
        try self.init(json: try SystemFiles.read(path), context: path,
                      configuration: try TokenizerConfiguration(directory: directory))
    }

    /// Reads a tokenizer.json document; `context` starts every error message. `configuration`
    /// gives the special tokens and chat template that tokenizer.json does not hold.
    public convenience init(json bytes: [UInt8], context: String = "tokenizer.json",
                            configuration: TokenizerConfiguration = TokenizerConfiguration()) throws {
        // the vocabulary and merges are read straight into the model's tables, not as JSONValues
        let tables = BPETableReader()
        try self.init(document: try JSONParser.parse(bytes, context: context, hooks: tables.hooks), context: context,
                      configuration: configuration, tables: tables)
    }

    /// A parsed tokenizer.json document (also what a GGUF file's tokenizer metadata is turned
    /// into); `tables` holds the model's vocabulary and merges when they were read while parsing.
    init(document: JSONValue, context: String, configuration: TokenizerConfiguration, tables: BPETableReader? = nil) throws {
        guard let root = document.object else {
            throw LoRAMixerError.format("\(context): expected a JSON object, found \(document.kindName)")
        }
        for key in ["truncation", "padding"] {
            if let value = root[key], value != .null {
                throw LoRAMixerError.format("\(context): `\(key)` is not supported (only null)")
            }
        }
        normalizer = try root["normalizer"].flatMap { $0 == .null ? nil : try Normalizer(json: $0, context: context) }

        guard let modelObject = root["model"]?.object else {
            throw LoRAMixerError.format("\(context): `model` must be an object, found \(root["model"]?.kindName ?? "nothing")")
        }
        let modelType = modelObject["type"]?.string ?? (modelObject["merges"] != nil ? "BPE" : "(no type)")
        guard modelType == "BPE" else {
            throw LoRAMixerError.format("\(context): model \(modelType) is not supported (only BPE, byte-level or with byte_fallback)")
        }
        model = try BPEModel(json: modelObject, context: context, tables: tables)

        preTokenizer = try root["pre_tokenizer"].flatMap { $0 == .null ? nil : try PreTokenizer(json: $0, context: context) }
        postProcessor = try root["post_processor"].flatMap { $0 == .null ? nil : try PostProcessor(json: $0, context: context) }
        decoder = try TokenDecoder(json: root["decoder"] ?? .null, context: context)

        var added: [AddedToken] = []
        for (index, entry) in (root["added_tokens"]?.array ?? []).enumerated() {
            guard let object = entry.object, let content = object["content"]?.string,
                  let id = object["id"]?.int, id >= 0, id < Int(Int32.max) else {
                throw LoRAMixerError.format("\(context): added_tokens[\(index)] must have a string `content` and a non-negative 32-bit `id`")
            }
            let special = object["special"]?.bool ?? false
            added.append(AddedToken(
                id: Int32(id), content: content, special: special,
                singleWord: object["single_word"]?.bool ?? false,
                leftStrip: object["lstrip"]?.bool ?? false,
                rightStrip: object["rstrip"]?.bool ?? false,
                normalized: object["normalized"]?.bool ?? !special))
        }
        addedTokens = AddedTokenMatcher(tokens: added, normalizer: normalizer)
        plainAddedTokens = AddedTokenMatcher(tokens: added.filter { !$0.special }, normalizer: normalizer)
        var byID: [Int32: AddedToken] = [:]
        var text: [Int32: String] = [:]
        for token in added {
            byID[token.id] = token
            text[token.id] = token.normalized ? normalizer.map { $0.apply(token.content) } ?? token.content : token.content
        }
        addedByID = byID
        addedText = text
        specialTokenIDs = Set(added.filter(\.special).map(\.id)).sorted()
        let addedIDs = Set(added.map(\.id))
        let vocabulary = model.vocabulary
        vocabularySize = vocabulary.distinctIDCount + addedIDs.filter { !vocabulary.contains(id: $0) }.count
        largestID = [vocabulary.largestID, addedIDs.max()].compactMap { $0 }.max()
        chatTemplateSource = configuration.chatTemplate
        specialTokens = try Self.resolve(configuration, context: context, added: added) { [model] text in
            model.vocabulary.id(text)
        }
    }

    /// The configuration's token texts as ids; a text that is neither an added token nor in the
    /// vocabulary is an error naming it.
    private static func resolve(_ configuration: TokenizerConfiguration, context: String, added: [AddedToken],
                                vocabularyID: (String) -> Int32?) throws -> SpecialTokens {
        var addedIDs: [String: Int32] = [:]
        for token in added where addedIDs[token.content] == nil { addedIDs[token.content] = token.id }
        func id(_ text: String?, _ name: String) throws -> Int32? {
            guard let text else { return nil }
            if let id = addedIDs[text] ?? vocabularyID(text) { return id }
            throw LoRAMixerError.format("\(context): the configured \(name) \(quoted(text)) is neither an added token nor in the vocabulary")
        }
        var special = SpecialTokens(
            bos: try id(configuration.bosToken, "bos_token"), eos: try id(configuration.eosToken, "eos_token"),
            pad: try id(configuration.padToken, "pad_token"), unk: try id(configuration.unkToken, "unk_token"),
            bosText: configuration.bosToken ?? "", eosText: configuration.eosToken ?? "")
        var stops = Set(configuration.generationEOS)
        if let eos = special.eos { stops.insert(eos) }
        for token in added where token.special && SpecialTokens.endOfTurnTexts.contains(token.content) {
            stops.insert(token.id)
        }
        special.endOfTurn = stops.sorted()
        return special
    }

    /// The id of a token given by its text: an added token's content, or a vocabulary entry as
    /// the file spells it.
    public func id(forToken text: String) -> Int32? {
        addedTokens.tokens.first { $0.content.utf8.elementsEqual(text.utf8) }?.id ?? model.vocabulary.id(text)
    }

    /// The ids for `text`; with `addSpecialTokens` the post-processor's template (BOS/EOS) is
    /// applied. Added tokens written in the text are recognised, as in `tokenizers`; with
    /// `parseSpecial: false` the special ones are not (their text is tokenized as any other
    /// text, as `tokenizers` does with `encode_special_tokens`), so that user text cannot forge
    /// control tokens.
    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecial: Bool = true) throws -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 3 + 1)
        for segment in (parseSpecial ? addedTokens : plainAddedTokens).segments(text) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let piece, let atStart):
                let words = preTokenizer?.apply([piece], atStart: atStart) ?? [piece]
                for word in words where !word.isEmpty { model.encode(word, into: &ids) }
            }
        }
        if addSpecialTokens, let postProcessor { ids = postProcessor.apply(ids) }
        return ids
    }

    /// The token's text as `tokenizers`' `id_to_token` gives it: an added token's content
    /// (normalized if it is matched normalized) or the model vocabulary's entry; nil for an id
    /// neither uses.
    public func token(_ id: Int32) -> String? {
        addedText[id] ?? model.vocabulary.token(id)
    }

    /// The bytes one token contributes in the middle of a text, for streaming (which may be
    /// part of a UTF-8 character): a `<0xXX>` token is its byte and a "▁" a space, even where
    /// decoding the whole text would drop it (Metaspace's and Strip's rules for the first
    /// token and the text's ends are left out, see `TokenDecoder.Mode.piece`). With no decoder,
    /// the token's own text (without the space that joins tokens). Nil for an unknown id.
    public func tokenToBytes(_ id: Int32) -> [UInt8]? {
        token(id).map { decoder.decode([Array($0.utf8)], mode: .piece) }
    }

    /// The bytes `ids` decode to, the whole sequence's rules applied as in `decode`, but with
    /// bytes that are not valid UTF-8 kept as they are. Unknown ids are skipped, and special
    /// tokens too when `skipSpecialTokens`, as `tokenizers` does.
    public func decodeBytes(_ ids: [Int32], skipSpecialTokens: Bool) -> [UInt8] {
        decoder.decode(tokens(ids, skipSpecialTokens: skipSpecialTokens), mode: .bytes)
    }

    /// The text `ids` decode to, as `tokenizers`' `decode`: bytes that are not valid UTF-8 (a
    /// character cut between tokens) become U+FFFD as each decoder step replaces them.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String {
        String(decoding: decoder.decode(tokens(ids, skipSpecialTokens: skipSpecialTokens), mode: .text), as: UTF8.self)
    }

    private func tokens(_ ids: [Int32], skipSpecialTokens: Bool) -> [[UInt8]] {
        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if skipSpecialTokens, addedByID[id]?.special == true { continue }
            if let text = addedText[id] {
                tokens.append(Array(text.utf8))
            } else if let bytes = model.vocabulary.bytes(of: id) {
                tokens.append(bytes)
            }
        }
        return tokens
    }
}

extension Tokenizer {
    /// Whether `id` is a special added token (BOS, EOS, control tokens).
    public func isSpecial(_ id: Int32) -> Bool { addedByID[id]?.special == true }
}
