/// The pre-tokenizers of tokenizer.json that byte-level and SentencePiece-style BPE files use.
/// Each step maps the list of pieces to a finer list; the BPE model then encodes each piece on
/// its own.
indirect enum PreTokenizer: Sendable {
    /// `ByteLevel`: optionally a space before a piece that does not start with one, optionally a
    /// split with GPT-2's pattern, then every byte mapped to its ByteLevel character.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Split` with a recognised pattern, behavior `Isolated`, not inverted.
    case split(SplitPattern)
    /// `Digits`: runs of digits (or each digit alone) split from the rest.
    case digits(individual: Bool)
    /// `Metaspace`: spaces become `replacement`, which is put before a piece that does not start
    /// with it (`prepend`), then optionally each replacement starts a new piece.
    case metaspace(replacement: String, prepend: MetaspacePrepend, split: Bool)
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
            let replacement = try metaspaceReplacement(object, name: name)
            self = .metaspace(replacement: replacement, prepend: try MetaspacePrepend(object, name: name),
                              split: object["split"]?.bool ?? true)
        default:
            throw LoRAMixerError.format("\(name) is not supported (supported: ByteLevel, Split, Digits, Metaspace, Sequence)")
        }
    }

    /// `atStart`: whether the first piece starts the text (not after an added token), which
    /// Metaspace's `first` scheme asks (`tokenizers` checks that the piece's original offset is 0).
    /// Every step keeps the first piece first, so the flag holds through a Sequence.
    func apply(_ pieces: [String], atStart: Bool) -> [String] {
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
        case .metaspace(let replacement, let prepend, let split):
            var result: [String] = []
            for (index, piece) in pieces.enumerated() {
                var text = String(decoding: replacingAll(Array(piece.utf8), [UInt8(ascii: " ")], Array(replacement.utf8)), as: UTF8.self)
                let prepends = prepend == .always || (prepend == .first && index == 0 && atStart)
                if prepends, !text.utf8.starts(with: replacement.utf8) { text = replacement + text }
                if split { result.append(contentsOf: Self.splitBefore(text, replacement)) } else { result.append(text) }
            }
            return result
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.apply($0, atStart: atStart) }
        }
    }

    /// Splits before each `separator` (`tokenizers`' MergedWithNext): "a▁▁b" -> "a", "▁", "▁b".
    private static func splitBefore(_ text: String, _ separator: String) -> [String] {
        let bytes = Array(text.utf8)
        let mark = Array(separator.utf8)
        var pieces: [String] = []
        var start = 0
        var position = 0
        while position < bytes.count {
            if position > start, bytes[position...].starts(with: mark) {
                pieces.append(String(decoding: bytes[start..<position], as: UTF8.self))
                start = position
            }
            position += 1
        }
        if start < bytes.count { pieces.append(String(decoding: bytes[start...], as: UTF8.self)) }
        return pieces
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

/// Metaspace's `prepend_scheme`: put the replacement before every piece, only before the one
/// that starts the text, or never.
enum MetaspacePrepend: Sendable {
    case always, first, never

    /// `prepend_scheme`, or in older files `add_prefix_space`; both present must agree, as
    /// `tokenizers` requires (and it reads `add_prefix_space: false` alone as a mismatch with
    /// the default scheme `always`, so do we).
    init(_ object: JSONObject, name: String) throws {
        switch object["prepend_scheme"] {
        case nil, .null?: self = .always
        case .string("always")?: self = .always
        case .string("first")?: self = .first
        case .string("never")?: self = .never
        case let other?:
            throw LoRAMixerError.format("\(name): prepend_scheme \(other.serialized()) is not one of \"always\", \"first\", \"never\"")
        }
        if object["add_prefix_space"]?.bool == false, self != .never {
            throw LoRAMixerError.format("\(name): add_prefix_space false does not match prepend_scheme (\(self))")
        }
    }
}

/// Metaspace's `replacement`: one character (a Rust `char`, so one Unicode scalar).
func metaspaceReplacement(_ object: JSONObject, name: String) throws -> String {
    guard let replacement = object["replacement"]?.string, replacement.unicodeScalars.count == 1 else {
        throw LoRAMixerError.format("\(name): `replacement` must be a string of one character")
    }
    return replacement
}
