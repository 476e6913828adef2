/// How values print, compare and serialize, as Python and jinja2 do.
extension TemplateValue {
    /// Python's `str()`: what `{{ value }}` writes (Undefined writes nothing).
    var pythonString: String {
        switch self {
        case .undefined: return ""
        case .string(let text): return text
        default: return pythonRepr
        }
    }

    /// Python's `repr()`, used inside printed lists and dicts.
    var pythonRepr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let value): return value ? "True" : "False"
        case .int(let value): return String(value)
        case .double(let value): return Self.pythonFloat(value)
        case .string(let text): return Self.pythonQuoted(text)
        case .list(let items): return "[" + items.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .tuple(let items):
            return "(" + items.map(\.pythonRepr).joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
        case .dict(let dict):
            return "{" + dict.items.map { Self.pythonQuoted($0.0) + ": " + $0.1.pythonRepr }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        case .function(let function): return "<function \(function.name)>"
        }
    }

    static func pythonFloat(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
        if value == value.rounded(), abs(value) < 1e16 {
            return String(Int(value)) + ".0"
        }
        var text = value.description
        if let e = text.firstIndex(of: "e") {
            var exponent = String(text[text.index(after: e)...])
            var sign = "+"
            if exponent.hasPrefix("-") { sign = "-"; exponent.removeFirst() }
            if exponent.hasPrefix("+") { exponent.removeFirst() }
            if exponent.count < 2 { exponent = "0" + exponent }
            text = String(text[..<e]) + "e" + sign + exponent
        }
        return text
    }

    static func pythonQuoted(_ text: String) -> String {
        let quote: Character = text.contains("'") && !text.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(scalar) == quote {
                    out += "\\" + String(quote)
                } else if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\x" + (hex.count < 2 ? "0" : "") + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append(quote)
        return out
    }

    /// The numeric value of a bool, int or float (Python treats True as 1), or nil.
    var numeric: Double? {
        switch self {
        case .bool(let value): return value ? 1 : 0
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }

    /// Python `==` (Undefined equals only Undefined, as jinja2's default Undefined does).
    func pythonEquals(_ other: TemplateValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.pythonEquals($1) }
        case (.dict(let a), .dict(let b)):
            return a.count == b.count && a.items.allSatisfy { key, value in b[key].map { value.pythonEquals($0) } ?? false }
        case (.namespace(let a), .namespace(let b)): return a === b
        default:
            if let a = numeric, let b = other.numeric { return a == b }
            return false
        }
    }

    /// `json.dumps(value, ensure_ascii=False, indent=indent, separators=..., sort_keys=...)`.
    func pythonJSON(indent: String?, itemSeparator: String, keySeparator: String, sortKeys: Bool,
                    level: Int = 0) throws -> String {
        func newline(_ depth: Int) -> String {
            guard let indent else { return "" }
            return "\n" + String(repeating: indent, count: depth)
        }
        switch self {
        case .none: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .double(let value):
            if value.isNaN { return "NaN" }
            if value.isInfinite { return value > 0 ? "Infinity" : "-Infinity" }
            return Self.pythonFloat(value)
        case .string(let text): return Self.jsonQuoted(text)
        case .list(let items), .tuple(let items):
            if items.isEmpty { return "[]" }
            let parts = try items.map {
                try $0.pythonJSON(indent: indent, itemSeparator: itemSeparator, keySeparator: keySeparator,
                                  sortKeys: sortKeys, level: level + 1)
            }
            return "[" + newline(level + 1) + parts.joined(separator: itemSeparator + newline(level + 1))
                + newline(level) + "]"
        case .dict(let dict):
            if dict.count == 0 { return "{}" }
            var items = dict.items
            if sortKeys { items.sort { Array($0.0.unicodeScalars.map(\.value)).lexicographicallyPrecedes($1.0.unicodeScalars.map(\.value)) } }
            let parts = try items.map {
                Self.jsonQuoted($0.0) + keySeparator
                    + (try $0.1.pythonJSON(indent: indent, itemSeparator: itemSeparator, keySeparator: keySeparator,
                                           sortKeys: sortKeys, level: level + 1))
            }
            return "{" + newline(level + 1) + parts.joined(separator: itemSeparator + newline(level + 1))
                + newline(level) + "}"
        case .undefined, .namespace, .function:
            throw TemplateRenderError("Object of type \(typeName) is not JSON serializable")
        }
    }

    /// A JSON string as Python's json module writes it with `ensure_ascii=False`.
    static func jsonQuoted(_ text: String) -> String {
        var out = ""
        JSONValue.writeString(text, to: &out, lowercaseHex: true)
        return out
    }
}

/// A failure while rendering, before the renderer attaches the position of the expression.
struct TemplateRenderError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
