/// The normalizers of tokenizer.json that Llama 2 (Prepend, Replace) and Qwen2 (NFC) files use.
/// `tokenizers` applies the normalizer to each piece of text between the added tokens matched in
/// the raw text, and to the content of the added tokens with `normalized: true`; so do we.
indirect enum Normalizer: Sendable {
    /// Unicode canonical composition (NFC).
    case nfc
    /// `Prepend`: the string before any non-empty text.
    case prepend(String)
    /// `Replace` with a String pattern: every non-overlapping occurrence, leftmost first.
    case replace(pattern: [UInt8], content: [UInt8])
    case sequence([Normalizer])

    init(json: JSONValue, context: String) throws {
        guard let object = json.object, let type = object["type"]?.string else {
            throw LoRAMixerError.format("\(context): normalizer must be an object with a string `type` or null, found \(json.kindName)")
        }
        let name = "\(context): normalizer \(type)"
        switch type {
        case "NFC":
            self = .nfc
        case "Prepend":
            guard let prepend = object["prepend"]?.string else {
                throw LoRAMixerError.format("\(name): `prepend` must be a string")
            }
            self = .prepend(prepend)
        case "Replace":
            let (pattern, content) = try replacePattern(object, name: name)
            self = .replace(pattern: pattern, content: content)
        case "Sequence":
            guard let steps = object["normalizers"]?.array else {
                throw LoRAMixerError.format("\(name): `normalizers` must be an array")
            }
            self = .sequence(try steps.map { try Normalizer(json: $0, context: context) })
        default:
            throw LoRAMixerError.format("\(name) is not supported (supported: NFC, Prepend, Replace, Sequence)")
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .nfc:
            // ASCII is its own NFC form, and most text is ASCII
            if text.utf8.allSatisfy({ $0 < 0x80 }) { return text }
            // the standard library's own NFC (underscored but public; Foundation is not imported)
            return String(decoding: text._nfcCodeUnits, as: UTF8.self)
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .replace(let pattern, let content):
            return String(decoding: replacingAll(Array(text.utf8), pattern, content), as: UTF8.self)
        case .sequence(let steps):
            return steps.reduce(text) { $1.apply($0) }
        }
    }
}

/// The `pattern` and `content` of a `Replace` normalizer or decoder. Only a non-empty String
/// pattern is accepted: a Regex one would need a regex engine matching Rust's `onig` exactly.
func replacePattern(_ object: JSONObject, name: String) throws -> (pattern: [UInt8], content: [UInt8]) {
    guard let pattern = object["pattern"]?.object else {
        throw LoRAMixerError.format("\(name): `pattern` must be an object {\"String\": ...}")
    }
    guard let literal = pattern["String"]?.string else {
        throw LoRAMixerError.format("\(name): pattern \(JSONValue.object(pattern).serialized()) is not supported (only a String pattern, no Regex)")
    }
    guard !literal.isEmpty else {
        throw LoRAMixerError.format("\(name): the String pattern is empty")
    }
    guard let content = object["content"]?.string else {
        throw LoRAMixerError.format("\(name): `content` must be a string")
    }
    return (Array(literal.utf8), Array(content.utf8))
}

/// `bytes` with every non-overlapping occurrence of `pattern` (leftmost first) replaced, as
/// Rust's `str::replace`. Byte matching is character matching here: a valid UTF-8 pattern can
/// only match valid UTF-8 text at character boundaries.
func replacingAll(_ bytes: [UInt8], _ pattern: [UInt8], _ content: [UInt8]) -> [UInt8] {
    guard let first = pattern.first, bytes.count >= pattern.count else { return bytes }
    var result: [UInt8] = []
    result.reserveCapacity(bytes.count)
    var position = 0
    while position < bytes.count {
        if bytes[position] == first, position + pattern.count <= bytes.count,
           bytes[position..<(position + pattern.count)].elementsEqual(pattern) {
            result.append(contentsOf: content)
            position += pattern.count
        } else {
            result.append(bytes[position])
            position += 1
        }
    }
    return result
}
