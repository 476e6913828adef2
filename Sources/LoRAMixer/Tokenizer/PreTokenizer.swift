/// The pre-tokenizers of tokenizer.json that byte-level BPE files use. Each step maps the list
/// of pieces to a finer list; the BPE model then encodes each piece on its own.
indirect enum PreTokenizer: Sendable {
    /// `ByteLevel`: optionally a space before a piece that does not start with one, optionally a
    /// split with GPT-2's pattern, then every byte mapped to its ByteLevel character.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Split` with a recognised pattern, behavior `Isolated`, not inverted.
    case split(SplitPattern)
    /// `Digits`: runs of digits (or each digit alone) split from the rest.
    case digits(individual: Bool)
    case sequence([PreTokenizer])

    init(json: JSONValue, context: String) throws {
        guard let object = json.object, let type = object["type"]?.string else {
            throw LoRAMixerError.format("\(context): pre_tokenizer must be an object with a string `type`, found \(json.kindName)")
        }
        let name = "\(context): pre_tokenizer \(type)"
        switch type {
        case "ByteLevel":
            self = .byteLevel(addPrefixSpace: object["add_prefix_space"]?.bool ?? true, useRegex: object["use_regex"]?.bool ?? true)
        case "Split":
            guard let pattern = object["pattern"]?.object else {
                throw LoRAMixerError.format("\(name): `pattern` must be an object {\"Regex\": ...} or {\"String\": ...}")
            }
            guard let regex = pattern["Regex"]?.string else {
                throw LoRAMixerError.format("\(name): pattern \(JSONValue.object(pattern).serialized()) is not supported (only the GPT-2, Llama 3 and Qwen2 regexes)")
            }
            guard let known = SplitPattern(regex: regex) else {
                throw LoRAMixerError.format("\(name): regex \"\(regex)\" is not supported (only the GPT-2, Llama 3 and Qwen2 regexes)")
            }
            let behavior = object["behavior"]?.string ?? "?"
            guard behavior == "Isolated" else {
                throw LoRAMixerError.format("\(name): behavior \(quoted(behavior)) is not supported (only \"Isolated\")")
            }
            guard object["invert"]?.bool ?? false == false else {
                throw LoRAMixerError.format("\(name): `invert: true` is not supported")
            }
            self = .split(known)
        case "Digits":
            self = .digits(individual: object["individual_digits"]?.bool ?? false)
        case "Sequence":
            guard let steps = object["pretokenizers"]?.array else {
                throw LoRAMixerError.format("\(name): `pretokenizers` must be an array")
            }
            self = .sequence(try steps.map { try PreTokenizer(json: $0, context: context) })
        case "Metaspace":
            throw LoRAMixerError.format("\(name) (SentencePiece-style) is not supported yet")
        default:
            throw LoRAMixerError.format("\(name) is not supported (supported: ByteLevel, Split, Digits, Sequence)")
        }
    }

    /// Whether a ByteLevel step maps the text to byte-level characters. The model's lookups
    /// (vocabulary, cache) rely on it: byte-level strings are only equal when their scalars are,
    /// whereas raw text compares under canonical equivalence ("é" == "e\u{301}" in Swift).
    var hasByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .split, .digits: return false
        case .sequence(let steps): return steps.contains { $0.hasByteLevel }
        }
    }

    func apply(_ pieces: [String]) -> [String] {
        switch self {
        case .byteLevel(let addPrefixSpace, let useRegex):
            var result: [String] = []
            result.reserveCapacity(pieces.count)
            for piece in pieces {
                // bytes, not Characters: " \u{200D}" is one grapheme cluster that starts with a space
                let text = addPrefixSpace && piece.utf8.first != UInt8(ascii: " ") ? " " + piece : piece
                if useRegex {
                    for part in SplitPattern.gpt2.split(Substring(text)) { result.append(ByteLevel.encode(part)) }
                } else {
                    result.append(ByteLevel.encode(Substring(text)))
                }
            }
            return result
        case .split(let pattern):
            return pieces.flatMap { pattern.split(Substring($0)).map(String.init) }
        case .digits(let individual):
            return pieces.flatMap { Self.splitDigits($0, individual: individual) }
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.apply($0) }
        }
    }

    /// Rust's `char::is_numeric` (Nd, Nl, No), the test `tokenizers`' Digits uses.
    private static func splitDigits(_ text: String, individual: Bool) -> [String] {
        var pieces: [String] = []
        var current = String.UnicodeScalarView()
        var currentIsDigits = false
        for scalar in text.unicodeScalars {
            let digit = isNumber(scalar)
            if !current.isEmpty, digit != currentIsDigits || (digit && individual) {
                pieces.append(String(current))
                current = String.UnicodeScalarView()
            }
            current.append(scalar)
            currentIsDigits = digit
        }
        if !current.isEmpty { pieces.append(String(current)) }
        return pieces
    }
}
