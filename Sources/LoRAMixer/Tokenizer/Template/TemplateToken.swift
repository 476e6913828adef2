/// One token of a chat template: literal text between tags, a tag's delimiters, or a piece of an
/// expression inside a tag. `offset` is the index of its first Unicode scalar in the (newline-
/// normalized) source, turned into line:column only when an error is reported.
struct TemplateToken: Equatable {
    enum Kind: Equatable {
        case text(String)
        case expressionBegin
        case expressionEnd
        case statementBegin
        case statementEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case symbol(String)
        case end
    }

    let kind: Kind
    let offset: Int

    /// How the token is written in the template, for "expected X, found Y" messages.
    var display: String {
        switch kind {
        case .text: return "text"
        case .expressionBegin: return "'{{'"
        case .expressionEnd: return "'}}'"
        case .statementBegin: return "'{%'"
        case .statementEnd: return "'%}'"
        case .name(let name): return "'\(name)'"
        case .string: return "a string"
        case .integer(let value): return "'\(value)'"
        case .float(let value): return "'\(value)'"
        case .symbol(let symbol): return "'\(symbol)'"
        case .end: return "the end of the template"
        }
    }
}

/// Where an offset lies in the source, as 1-based line and column, for error messages.
struct TemplateSource {
    let scalars: [Unicode.Scalar]

    /// Normalizes newlines as jinja2 does (`\r\n` and `\r` become `\n`) and drops one trailing
    /// newline (jinja2's default `keep_trailing_newline=False`, which transformers keeps).
    init(_ text: String) {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(text.unicodeScalars.count)
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\r" {
                scalars.append("\n")
                previousWasCR = true
                continue
            }
            if scalar == "\n" && previousWasCR {
                previousWasCR = false
                continue
            }
            previousWasCR = false
            scalars.append(scalar)
        }
        if scalars.last == "\n" { scalars.removeLast() }
        self.scalars = scalars
    }

    func location(_ offset: Int) -> String {
        var line = 1
        var column = 1
        for scalar in scalars[0..<min(max(offset, 0), scalars.count)] {
            if scalar == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return "line \(line), column \(column)"
    }

    /// The error every compile and render failure throws: the position, then the reason.
    func error(_ reason: String, at offset: Int) -> LoRAMixerError {
        .format("chat template: \(location(offset)): \(reason)")
    }
}
