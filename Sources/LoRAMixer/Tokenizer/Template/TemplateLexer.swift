/// Splits a chat template into tokens with jinja2's delimiters and the whitespace rules
/// transformers renders with: `trim_blocks=True` (the newline right after `%}` or `#}` is
/// dropped), `lstrip_blocks=True` (spaces and tabs before `{%` or `{#` at the start of a line are
/// dropped, unless written `{%+`), and the explicit `-` markers that strip all whitespace on their side.
struct TemplateLexer {
    let source: TemplateSource
    private var scalars: [Unicode.Scalar] { source.scalars }
    private var position = 0
    private var tokens: [TemplateToken] = []

    init(source: TemplateSource) {
        self.source = source
    }

    static func tokenize(_ source: TemplateSource) throws -> [TemplateToken] {
        var lexer = TemplateLexer(source: source)
        try lexer.run()
        return lexer.tokens
    }

    private enum TagKind { case expression, statement, comment }

    private func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\u{0B}" || scalar == "\u{0C}"
    }

    /// The next tag opening at or after `from`: its offset and kind.
    private func nextTag(from: Int) -> (Int, TagKind)? {
        var index = from
        while index + 1 < scalars.count {
            if scalars[index] == "{" {
                switch scalars[index + 1] {
                case "{": return (index, .expression)
                case "%": return (index, .statement)
                case "#": return (index, .comment)
                default: break
                }
            }
            index += 1
        }
        return nil
    }

    private mutating func run() throws {
        var lineStarting = true
        var stripNextLeading = false
        while true {
            var textStart = position
            if stripNextLeading {
                while textStart < scalars.count && isWhitespace(scalars[textStart]) { textStart += 1 }
                if textStart > position { lineStarting = scalars[textStart - 1] == "\n" }
                stripNextLeading = false
            }
            guard let (tagOffset, kind) = nextTag(from: textStart) else {
                appendText(textStart, scalars.count)
                break
            }
            let marker: Unicode.Scalar? = tagOffset + 2 < scalars.count ? scalars[tagOffset + 2] : nil
            var textEnd = tagOffset
            if marker == "-" {
                while textEnd > textStart && isWhitespace(scalars[textEnd - 1]) { textEnd -= 1 }
            } else if kind != .expression && marker != "+" {
                var lineStart = textEnd
                while lineStart > textStart && (scalars[lineStart - 1] == " " || scalars[lineStart - 1] == "\t") {
                    lineStart -= 1
                }
                let atLineStart = lineStart > textStart ? scalars[lineStart - 1] == "\n" : lineStarting
                if atLineStart { textEnd = lineStart }
            }
            appendText(textStart, textEnd)
            position = tagOffset + 2 + (marker == "-" || marker == "+" ? 1 : 0)
            let stripAfter: Bool
            switch kind {
            case .comment:
                stripAfter = try skipComment(openedAt: tagOffset)
            case .expression:
                tokens.append(TemplateToken(kind: .expressionBegin, offset: tagOffset))
                stripAfter = try tokenizeTag(closer: "}", openedAt: tagOffset)
            case .statement:
                tokens.append(TemplateToken(kind: .statementBegin, offset: tagOffset))
                stripAfter = try tokenizeTag(closer: "%", openedAt: tagOffset)
            }
            lineStarting = false
            if stripAfter {
                stripNextLeading = true
            } else if kind != .expression && position < scalars.count && scalars[position] == "\n" {
                position += 1
                lineStarting = true
            }
        }
        tokens.append(TemplateToken(kind: .end, offset: scalars.count))
    }

    private mutating func appendText(_ start: Int, _ end: Int) {
        guard end > start else { return }
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars[start..<end])
        tokens.append(TemplateToken(kind: .text(text), offset: start))
    }

    /// Skips to `#}`; answers whether it was written `-#}`.
    private mutating func skipComment(openedAt: Int) throws -> Bool {
        var index = position
        while index + 1 < scalars.count {
            if scalars[index] == "#" && scalars[index + 1] == "}" {
                position = index + 2
                return index > openedAt + 2 && scalars[index - 1] == "-"
            }
            index += 1
        }
        throw source.error("comment opened here is never closed with '#}'", at: openedAt)
    }

    /// Tokenizes a tag's expression up to its closer (`}}` or `%}`); answers whether it was
    /// written with a `-` before the closer.
    private mutating func tokenizeTag(closer: Unicode.Scalar, openedAt: Int) throws -> Bool {
        let closeToken: TemplateToken.Kind = closer == "}" ? .expressionEnd : .statementEnd
        var nesting = 0
        while true {
            while position < scalars.count && isWhitespace(scalars[position]) { position += 1 }
            guard position < scalars.count else {
                throw source.error("tag opened here is never closed with '\(closer)}'", at: openedAt)
            }
            let scalar = scalars[position]
            let next = position + 1 < scalars.count ? scalars[position + 1] : nil
            let afterNext = position + 2 < scalars.count ? scalars[position + 2] : nil
            if nesting == 0 || closer == "%" {
                if scalar == "-" && next == closer && afterNext == "}" {
                    tokens.append(TemplateToken(kind: closeToken, offset: position))
                    position += 3
                    return true
                }
                if scalar == closer && next == "}" {
                    tokens.append(TemplateToken(kind: closeToken, offset: position))
                    position += 2
                    return false
                }
            }
            let start = position
            if scalar == "'" || scalar == "\"" {
                tokens.append(TemplateToken(kind: .string(try readString(quote: scalar)), offset: start))
            } else if scalar.properties.numericType != nil && ("0"..."9").contains(scalar) {
                tokens.append(TemplateToken(kind: try readNumber(), offset: start))
            } else if scalar == "_" || scalar.properties.isAlphabetic {
                var name = ""
                while position < scalars.count
                    && (scalars[position] == "_" || scalars[position].properties.isAlphabetic
                        || ("0"..."9").contains(scalars[position])) {
                    name.unicodeScalars.append(scalars[position])
                    position += 1
                }
                tokens.append(TemplateToken(kind: .name(name), offset: start))
            } else {
                let symbol = try readSymbol()
                if symbol == "{" || symbol == "[" || symbol == "(" { nesting += 1 }
                if symbol == "}" || symbol == "]" || symbol == ")" { nesting -= 1 }
                tokens.append(TemplateToken(kind: .symbol(symbol), offset: start))
            }
        }
    }

    private mutating func readSymbol() throws -> String {
        let twoCharacter = ["//", "**", "==", "!=", "<=", ">="]
        if position + 1 < scalars.count {
            var pair = ""
            pair.unicodeScalars.append(scalars[position])
            pair.unicodeScalars.append(scalars[position + 1])
            if twoCharacter.contains(pair) {
                position += 2
                return pair
            }
        }
        let single: Set<Unicode.Scalar> = ["+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "|",
                                           "(", ")", "[", "]", "{", "}"]
        let scalar = scalars[position]
        guard single.contains(scalar) else {
            throw source.error("unexpected character '\(scalar)' in a tag", at: position)
        }
        position += 1
        return String(scalar)
    }

    private mutating func readNumber() throws -> TemplateToken.Kind {
        let start = position
        var text = ""
        func digits() {
            while position < scalars.count && (("0"..."9").contains(scalars[position]) || scalars[position] == "_") {
                if scalars[position] != "_" { text.unicodeScalars.append(scalars[position]) }
                position += 1
            }
        }
        digits()
        var isFloat = false
        if position + 1 < scalars.count && scalars[position] == "." && ("0"..."9").contains(scalars[position + 1]) {
            isFloat = true
            text += "."
            position += 1
            digits()
        }
        if position < scalars.count && (scalars[position] == "e" || scalars[position] == "E") {
            var look = position + 1
            if look < scalars.count && (scalars[look] == "+" || scalars[look] == "-") { look += 1 }
            if look < scalars.count && ("0"..."9").contains(scalars[look]) {
                isFloat = true
                text += "e"
                if scalars[position + 1] == "-" { text += "-" }
                position = look
                digits()
            }
        }
        if isFloat {
            guard let value = Double(text) else { throw source.error("invalid number '\(text)'", at: start) }
            return .float(value)
        }
        guard let value = Int(text) else {
            throw source.error("integer literal '\(text)' is out of range", at: start)
        }
        return .integer(value)
    }

    /// A quoted string with Python's escapes (`\n`, `\t`, `\\`, `\'`, `\"`, `\xHH`, `\uHHHH`, ...),
    /// as jinja2 decodes them; an unknown escape keeps its backslash, as Python does.
    private mutating func readString(quote: Unicode.Scalar) throws -> String {
        let start = position
        position += 1
        var result = ""
        while position < scalars.count {
            let scalar = scalars[position]
            if scalar == quote {
                position += 1
                return result
            }
            if scalar == "\\" {
                guard position + 1 < scalars.count else { break }
                let escaped = scalars[position + 1]
                position += 2
                switch escaped {
                case "n": result += "\n"
                case "t": result += "\t"
                case "r": result += "\r"
                case "0": result += "\0"
                case "a": result += "\u{07}"
                case "b": result += "\u{08}"
                case "f": result += "\u{0C}"
                case "v": result += "\u{0B}"
                case "\\": result += "\\"
                case "'": result += "'"
                case "\"": result += "\""
                case "\n": break
                case "x", "u", "U":
                    let length = escaped == "x" ? 2 : (escaped == "u" ? 4 : 8)
                    guard position + length <= scalars.count else {
                        throw source.error("truncated \\\(escaped) escape in a string", at: position - 2)
                    }
                    var hex = ""
                    hex.unicodeScalars.append(contentsOf: scalars[position..<position + length])
                    guard let code = UInt32(hex, radix: 16), let decoded = Unicode.Scalar(code) else {
                        throw source.error("invalid \\\(escaped) escape '\(hex)' in a string", at: position - 2)
                    }
                    result.unicodeScalars.append(decoded)
                    position += length
                default:
                    result += "\\"
                    result.unicodeScalars.append(escaped)
                }
                continue
            }
            result.unicodeScalars.append(scalar)
            position += 1
        }
        throw source.error("string opened here is never closed", at: start)
    }
}
