/// One entry of tokenizer.json's `added_tokens`.
public struct AddedToken: Sendable, Equatable {
    public let id: Int32
    public let content: String
    public let special: Bool
    public let singleWord: Bool
    public let leftStrip: Bool
    public let rightStrip: Bool
    public let normalized: Bool
}

/// Finds added tokens before pre-tokenization, as `tokenizers`' AddedVocabulary does: first the
/// tokens with `normalized: false` in the raw text; then each piece of text between those is
/// normalized and the tokens with `normalized: true` (their content normalized too) are found in
/// it. Matches are leftmost-longest and non-overlapping; `single_word` drops a match touching a
/// word character, `lstrip`/`rstrip` take the whitespace beside the token into it.
struct AddedTokenMatcher: Sendable {
    let tokens: [AddedToken]
    let normalizer: Normalizer?
    private let raw: [[UInt8]: Int]
    private let normalized: [[UInt8]: Int]
    /// Content lengths present, longest first, per set.
    private let rawLengths: [Int]
    private let normalizedLengths: [Int]
    /// Bytes some token of each set starts with: most positions are rejected on that alone.
    private let rawFirstBytes: [Bool]
    private let normalizedFirstBytes: [Bool]

    init(tokens: [AddedToken], normalizer: Normalizer?) {
        self.tokens = tokens
        self.normalizer = normalizer
        var raw: [[UInt8]: Int] = [:]
        var normalized: [[UInt8]: Int] = [:]
        for (index, token) in tokens.enumerated() where !token.content.isEmpty {
            if token.normalized {
                normalized[Array(normalizer.map { $0.apply(token.content) }?.utf8 ?? token.content.utf8)] = index
            } else {
                raw[Array(token.content.utf8)] = index
            }
        }
        self.raw = raw
        self.normalized = normalized
        rawLengths = Set(raw.keys.map(\.count)).sorted(by: >)
        normalizedLengths = Set(normalized.keys.map(\.count)).sorted(by: >)
        func firstBytes(_ table: [[UInt8]: Int]) -> [Bool] {
            var flags = [Bool](repeating: false, count: 256)
            for key in table.keys { if let first = key.first { flags[Int(first)] = true } }
            return flags
        }
        rawFirstBytes = firstBytes(raw)
        normalizedFirstBytes = firstBytes(normalized)
    }

    enum Segment {
        /// Normalized text; `atStart` when it begins the input (not after an added token).
        case text(String, atStart: Bool)
        case token(Int32)
    }

    func segments(_ text: String) -> [Segment] {
        var result: [Segment] = []
        for segment in split(text, raw, rawLengths, rawFirstBytes) {
            if case .text(let piece, let rawStart) = segment {
                let normalizedPiece = normalizer?.apply(piece) ?? piece
                for part in split(normalizedPiece, normalized, normalizedLengths, normalizedFirstBytes) {
                    if case .text(let text, let start) = part {
                        result.append(.text(text, atStart: rawStart && start))
                    } else {
                        result.append(part)
                    }
                }
            } else {
                result.append(segment)
            }
        }
        return result
    }

    /// The non-empty pieces of text (`atStart` when at offset 0) and the tokens found.
    private func split(_ text: String, _ table: [[UInt8]: Int], _ lengths: [Int], _ firstBytes: [Bool]) -> [Segment] {
        let bytes = Array(text.utf8)
        guard !table.isEmpty else { return bytes.isEmpty ? [] : [.text(text, atStart: true)] }
        var segments: [Segment] = []
        var emitted = 0
        var position = 0
        func piece(_ from: Int, _ to: Int) -> String { String(decoding: bytes[from..<to], as: UTF8.self) }
        while position < bytes.count {
            var found: (index: Int, length: Int)?
            for length in lengths where firstBytes[Int(bytes[position])] && position + length <= bytes.count {
                if let index = table[Array(bytes[position..<(position + length)])] {
                    found = (index, length)
                    break
                }
            }
            guard let found else {
                position += 1
                continue
            }
            let token = tokens[found.index]
            var start = position
            var stop = position + found.length
            position = stop
            if token.singleWord {
                let before = start > 0 && Self.isWordCharacter(Self.lastScalar(bytes, before: start))
                let after = stop < bytes.count && Self.isWordCharacter(Self.firstScalar(bytes, from: stop))
                if before || after { continue }
            }
            if token.leftStrip {
                start = max(Self.whitespaceStart(bytes, before: start), emitted)
            }
            if token.rightStrip {
                stop = Self.whitespaceEnd(bytes, from: stop)
            }
            if emitted < start { segments.append(.text(piece(emitted, start), atStart: emitted == 0)) }
            segments.append(.token(token.id))
            emitted = stop
        }
        if emitted < bytes.count { segments.append(.text(piece(emitted, bytes.count), atStart: emitted == 0)) }
        return segments
    }

    /// A word character as `tokenizers` decides it for `single_word` (the Unicode `\w` of the
    /// Rust `regex` crate, checked against `tokenizers`): Alphabetic, a mark (Mn, Mc, Me), a
    /// decimal digit (Nd), connector punctuation (Pc, e.g. `_`) or Join_Control (ZWJ, ZWNJ).
    /// So `²` (No) and `-` are not, `Ⅻ` (Nl, Alphabetic) and U+FE0F (Mn) are.
    private static func isWordCharacter(_ scalar: Unicode.Scalar?) -> Bool {
        guard let scalar else { return false }
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    private static func decodeScalar(_ bytes: [UInt8], at start: Int) -> (Unicode.Scalar, Int)? {
        var iterator = bytes[start...].makeIterator()
        var decoder = UTF8()
        guard case .scalarValue(let scalar) = decoder.decode(&iterator) else { return nil }
        return (scalar, UTF8.width(scalar))
    }

    private static func firstScalar(_ bytes: [UInt8], from start: Int) -> Unicode.Scalar? {
        decodeScalar(bytes, at: start)?.0
    }

    private static func lastScalar(_ bytes: [UInt8], before end: Int) -> Unicode.Scalar? {
        var start = end - 1
        while start > 0, bytes[start] & 0xC0 == 0x80 { start -= 1 }
        return decodeScalar(bytes, at: start)?.0
    }

    /// The byte offset where the run of whitespace ending at `end` starts.
    private static func whitespaceStart(_ bytes: [UInt8], before end: Int) -> Int {
        var position = end
        while position > 0 {
            var start = position - 1
            while start > 0, bytes[start] & 0xC0 == 0x80 { start -= 1 }
            guard let scalar = decodeScalar(bytes, at: start)?.0, scalar.properties.isWhitespace else { break }
            position = start
        }
        return position
    }

    /// The byte offset where the run of whitespace starting at `start` ends.
    private static func whitespaceEnd(_ bytes: [UInt8], from start: Int) -> Int {
        var position = start
        while position < bytes.count, let (scalar, width) = decodeScalar(bytes, at: position), scalar.properties.isWhitespace {
            position += width
        }
        return position
    }
}
