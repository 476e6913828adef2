/// The regular expressions real byte-level tokenizers split text with, recognised by their exact
/// text and run as hand-written matchers with the semantics `tokenizers` gets from Oniguruma:
/// ordered alternation, greedy quantifiers with backtracking, `\s` = White_Space, `\p{L}` /
/// `\p{N}` = the Letter / Number general categories. Any other pattern is refused at load.
enum SplitPattern: Sendable, Equatable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Llama 3's: `(?i:'s|...|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// Qwen2's: Llama 3's with `\p{N}` (one digit) instead of `\p{N}{1,3}`.
    case qwen2

    static let patterns: [(String, SplitPattern)] = [
        (#"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#, .gpt2),
        (#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#, .llama3),
        (#"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#, .qwen2),
    ]

    /// The pattern's text as tokenizer.json writes it.
    var regex: String { Self.patterns.first { $0.1 == self }!.0 }

    init?(regex: String) {
        guard let match = Self.patterns.first(where: { $0.0 == regex }) else { return nil }
        self = match.1
    }

    /// Splits `text` into the pattern's matches and the gaps between them (`Isolated`).
    func split(_ text: Substring) -> [Substring] {
        let scalars = Array(text.unicodeScalars)
        var indices: [String.Index] = []
        indices.reserveCapacity(scalars.count + 1)
        var index = text.startIndex
        while index < text.endIndex {
            indices.append(index)
            text.unicodeScalars.formIndex(after: &index)
        }
        indices.append(text.endIndex)

        var pieces: [Substring] = []
        var position = 0
        var gapStart = 0
        while position < scalars.count {
            let length = match(scalars, at: position)
            if length > 0 {
                if gapStart < position { pieces.append(text[indices[gapStart]..<indices[position]]) }
                pieces.append(text[indices[position]..<indices[position + length]])
                position += length
                gapStart = position
            } else {
                position += 1
            }
        }
        if gapStart < scalars.count { pieces.append(text[indices[gapStart]..<indices[scalars.count]]) }
        return pieces
    }

    /// The length in scalars of the match starting at `start`, 0 for none.
    private func match(_ s: [Unicode.Scalar], at start: Int) -> Int {
        let count = s.count
        func at(_ i: Int) -> Unicode.Scalar? { i < count ? s[i] : nil }
        func run(from i: Int, _ test: (Unicode.Scalar) -> Bool) -> Int {
            var end = i
            while end < count, test(s[end]) { end += 1 }
            return end - i
        }

        if let length = contraction(s, at: start, caseInsensitive: self != .gpt2) { return length }

        switch self {
        case .gpt2:
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
            for test in [isLetter, isNumber, isOther] as [(Unicode.Scalar) -> Bool] {
                if s[start] == " ", let next = at(start + 1), test(next) { return 1 + run(from: start + 1, test) }
                if test(s[start]) { return run(from: start, test) }
            }
        case .llama3, .qwen2:
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            let first = s[start]
            if first != "\r", first != "\n", !isLetter(first), !isNumber(first), let next = at(start + 1), isLetter(next) {
                return 1 + run(from: start + 1, isLetter)
            }
            if isLetter(first) { return run(from: start, isLetter) }
            // `\p{N}{1,3}` or `\p{N}`
            if isNumber(first) { return min(run(from: start, isNumber), self == .llama3 ? 3 : 1) }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            var otherStart: Int?
            if first == " ", let next = at(start + 1), isOther(next) { otherStart = start + 1 } else if isOther(first) { otherStart = start }
            if let otherStart {
                let end = otherStart + run(from: otherStart, isOther)
                return end + run(from: end) { $0 == "\r" || $0 == "\n" } - start
            }
            // `\s*[\r\n]+`: greedy whitespace, backtracked to end just after its last \r or \n
            let spaces = run(from: start, isSpace)
            if let last = (start..<(start + spaces)).last(where: { s[$0] == "\r" || s[$0] == "\n" }) {
                return last + 1 - start
            }
        }
        // `\s+(?!\S)` then `\s+`
        let spaces = run(from: start, isSpace)
        guard spaces > 0 else { return 0 }
        if start + spaces == count || spaces == 1 { return spaces }
        return spaces - 1
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d`, optionally case-insensitive as Oniguruma folds case (so `ſ`,
    /// which folds to `s`, matches `s`).
    private func contraction(_ s: [Unicode.Scalar], at start: Int, caseInsensitive: Bool) -> Int? {
        guard s[start] == "'" else { return nil }
        func letter(_ offset: Int) -> Unicode.Scalar? {
            let i = start + offset
            guard i < s.count else { return nil }
            guard caseInsensitive else { return s[i] }
            switch s[i] {
            case "A"..."Z": return Unicode.Scalar(s[i].value + 32)
            case "\u{017F}": return "s"
            default: return s[i]
            }
        }
        for suffix in ["s", "t", "re", "ve", "m", "ll", "d"] as [String] {
            let expected = Array(suffix.unicodeScalars)
            if expected.indices.allSatisfy({ letter($0 + 1) == expected[$0] }) { return 1 + expected.count }
        }
        return nil
    }
}

// ASCII answers without the property tables (most text is ASCII); the rest asks the stdlib.

func isLetter(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.isASCII { return (scalar.value | 0x20) &- 0x61 < 26 }
    switch scalar.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
}

func isNumber(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.isASCII { return scalar.value &- 0x30 < 10 }
    switch scalar.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}

/// White_Space: in ASCII, tab through carriage return and the space (not U+001C...U+001F).
func isSpace(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.isASCII { return scalar.value == 0x20 || scalar.value &- 0x09 < 5 }
    return scalar.properties.isWhitespace
}

/// `[^\s\p{L}\p{N}]`
func isOther(_ scalar: Unicode.Scalar) -> Bool { !isSpace(scalar) && !isLetter(scalar) && !isNumber(scalar) }
