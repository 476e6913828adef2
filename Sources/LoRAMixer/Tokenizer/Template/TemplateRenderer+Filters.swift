/// The filters (`value | name(args)`) and tests (`value is name`) of the supported subset.
/// An unknown one is an error naming it.
extension TemplateRenderer {
    static let filterNames: Set<String> = [
        "trim", "length", "count", "tojson", "upper", "lower", "capitalize", "title", "first", "last", "join",
        "default", "d", "items", "list", "string", "safe", "reverse", "int", "float", "abs", "replace",
        "selectattr", "rejectattr", "select", "reject", "map",
    ]
    static let testNames: Set<String> = [
        "defined", "undefined", "none", "string", "mapping", "boolean", "integer", "float", "number", "true",
        "false", "iterable", "sequence", "callable", "equalto", "eq", "==", "sameas", "ne", "!=", "lt",
        "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "even", "odd", "divisibleby",
        "lower", "upper",
    ]

    /// A list or tuple as a list (for arguments that accept either).
    static func sequence(_ value: TemplateValue) throws -> TemplateValue {
        if case .tuple(let items) = value { return .list(items) }
        return value
    }

    func applyFilter(_ name: String, _ value: TemplateValue, _ arguments: TemplateArguments, at offset: Int) throws -> TemplateValue {
        func string(_ value: TemplateValue) -> String { value.pythonString }
        switch name {
        case "trim":
            if case .string(let characters)? = arguments.value(0, "chars") {
                return .string(Self.strip(string(value), characters: characters, leading: true, trailing: true))
            }
            return .string(Self.strip(string(value), characters: nil, leading: true, trailing: true))
        case "length", "count":
            switch value {
            case .undefined: return .int(0)
            case .string(let text): return .int(text.unicodeScalars.count)
            case .list(let items), .tuple(let items): return .int(items.count)
            case .dict(let dict): return .int(dict.count)
            default: throw TemplateRenderError("object of type '\(value.typeName)' has no len()")
            }
        case "tojson":
            var indent: String?
            switch arguments.value(1, "indent") {
            case .int(let count)?: indent = String(repeating: " ", count: max(count, 0))
            case .string(let text)?: indent = text
            case nil, .none?: indent = nil
            case let other?: throw TemplateRenderError("tojson indent must be an integer or string, not \(other.typeName)")
            }
            var itemSeparator = indent == nil ? ", " : ","
            var keySeparator = ": "
            if let separators = arguments.value(2, "separators"), case .list(let parts) = try Self.sequence(separators), parts.count == 2,
               case .string(let item) = parts[0], case .string(let key) = parts[1] {
                itemSeparator = item
                keySeparator = key
            }
            if let ensureASCII = arguments.value(0, "ensure_ascii"), ensureASCII.isTruthy {
                throw TemplateRenderError("tojson with ensure_ascii=True is not supported")
            }
            let sortKeys = arguments.value(3, "sort_keys")?.isTruthy ?? false
            return .string(try value.pythonJSON(indent: indent, itemSeparator: itemSeparator,
                                                keySeparator: keySeparator, sortKeys: sortKeys))
        case "upper": return .string(string(value).uppercased())
        case "lower": return .string(string(value).lowercased())
        case "capitalize":
            return .string(Self.capitalized(string(value)))
        case "title": return .string(Self.titleCased(string(value)))
        case "first", "last":
            let items = try iterate(value, at: offset)
            return (name == "first" ? items.first : items.last) ?? .undefined("no \(name) item of an empty sequence")
        case "join":
            let separator = arguments.value(0, "d").map(string) ?? ""
            var items = try iterate(value, at: offset)
            if let attributeName = arguments.value(1, "attribute") {
                items = try items.map { try item(of: $0, attributeName) }
            }
            return .string(items.map(string).joined(separator: separator))
        case "default", "d":
            let fallback = arguments.value(0, "default_value") ?? .string("")
            let useBoolean = arguments.value(1, "boolean")?.isTruthy ?? false
            if value.isUndefined || (useBoolean && !value.isTruthy) { return fallback }
            return value
        case "items":
            switch value {
            case .undefined: return .list([])
            case .dict(let dict): return .list(dict.items.map { .tuple([.string($0.0), $0.1]) })
            default: throw TemplateRenderError("can only get item pairs from a mapping, not \(value.typeName)")
            }
        case "list": return .list(try iterate(value, at: offset))
        case "string": return .string(string(value))
        case "safe": return value
        case "reverse":
            if case .string(let text) = value { return .string(String(String.UnicodeScalarView(text.unicodeScalars.reversed()))) }
            return .list(try iterate(value, at: offset).reversed())
        case "int":
            let fallback = arguments.value(0, "default") ?? .int(0)
            switch value {
            case .int: return value
            case .bool(let flag): return .int(flag ? 1 : 0)
            case .double(let number): return number.isFinite && abs(number) < 9e18 ? .int(Int(number)) : fallback
            case .string(let text):
                let trimmed = Self.strip(text, characters: nil, leading: true, trailing: true)
                if let number = Int(trimmed) { return .int(number) }
                if let number = Double(trimmed), number.isFinite, abs(number) < 9e18 { return .int(Int(number)) }
                return fallback
            default: return fallback
            }
        case "float":
            switch value {
            case .string(let text): return Double(Self.strip(text, characters: nil, leading: true, trailing: true)).map { .double($0) } ?? .double(0)
            default: return value.numeric.map { .double($0) } ?? .double(0)
            }
        case "abs":
            switch value {
            case .int(let number) where number != Int.min: return .int(abs(number))
            case .double(let number): return .double(abs(number))
            default: throw TemplateRenderError("bad operand type for abs(): '\(value.typeName)'")
            }
        case "replace":
            guard case .string(let old)? = arguments.value(0, "old"), case .string(let new)? = arguments.value(1, "new") else {
                throw TemplateRenderError("replace needs two string arguments")
            }
            var count = -1
            if case .int(let limit)? = arguments.value(2, "count") { count = limit }
            return .string(try Self.replace(string(value), old, new, count: count, limit: Self.maximumOutputScalars))
        case "selectattr", "rejectattr":
            guard case .string(let attributeName)? = arguments.positional.first else {
                throw TemplateRenderError("\(name) needs an attribute name")
            }
            let testName: String?
            if arguments.positional.count > 1, case .string(let test) = arguments.positional[1] { testName = test } else { testName = nil }
            let testArguments = TemplateArguments(positional: Array(arguments.positional.dropFirst(2)))
            let keep = name == "selectattr"
            return .list(try iterate(value, at: offset).filter { element in
                let member = try attribute(of: element, attributeName)
                let passed = try testName.map { try applyTest($0, member, testArguments, at: offset) } ?? member.isTruthy
                return passed == keep
            })
        case "select", "reject":
            guard case .string(let testName)? = arguments.positional.first else {
                return .list(try iterate(value, at: offset).filter { $0.isTruthy == (name == "select") })
            }
            let testArguments = TemplateArguments(positional: Array(arguments.positional.dropFirst()))
            return .list(try iterate(value, at: offset).filter {
                try applyTest(testName, $0, testArguments, at: offset) == (name == "select")
            })
        case "map":
            guard case .string(let attributeName)? = arguments.value(99, "attribute") else {
                throw TemplateRenderError("map is supported only as map(attribute='name')")
            }
            return .list(try iterate(value, at: offset).map { try attribute(of: $0, attributeName) })
        default:
            throw TemplateRenderError("unknown filter '\(name)'")
        }
    }

    func applyTest(_ name: String, _ value: TemplateValue, _ arguments: TemplateArguments, at offset: Int) throws -> Bool {
        let argument = arguments.positional.first
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .dict = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.numeric != nil
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "iterable":
            switch value {
            case .string, .list, .tuple, .dict: return true
            default: return false
            }
        case "sequence":
            switch value {
            case .string, .list, .tuple, .dict: return true
            default: return false
            }
        case "callable": if case .function = value { return true } else { return false }
        case "equalto", "eq", "==", "sameas": return argument.map { value.pythonEquals($0) } ?? false
        case "ne", "!=": return !(argument.map { value.pythonEquals($0) } ?? false)
        case "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=":
            let symbols = ["lt": "<", "lessthan": "<", "le": "<=", "gt": ">", "greaterthan": ">", "ge": ">="]
            guard let argument else { throw TemplateRenderError("test '\(name)' needs an argument") }
            return try binary(symbols[name] ?? name, value, argument).isTruthy
        case "in":
            guard let argument else { throw TemplateRenderError("test 'in' needs an argument") }
            return try binary("in", value, argument).isTruthy
        case "even", "odd":
            guard case .int(let number) = value else { throw TemplateRenderError("test '\(name)' needs an integer") }
            return (number % 2 == 0) == (name == "even")
        case "divisibleby":
            guard case .int(let number) = value, case .int(let divisor)? = argument, divisor != 0, divisor != -1 || number != Int.min else {
                throw TemplateRenderError("test 'divisibleby' needs integers and a non-zero divisor")
            }
            return number % divisor == 0
        case "lower": return value.pythonString == value.pythonString.lowercased()
        case "upper": return value.pythonString == value.pythonString.uppercased()
        default:
            throw TemplateRenderError("unknown test '\(name)'")
        }
    }

    /// Python's `str.strip`/`lstrip`/`rstrip`: whitespace, or the given characters.
    static func strip(_ text: String, characters: String?, leading: Bool, trailing: Bool) -> String {
        let set = characters.map { Set($0.unicodeScalars) }
        func strippable(_ scalar: Unicode.Scalar) -> Bool {
            if let set { return set.contains(scalar) }
            return scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
        }
        var scalars = Substring(text).unicodeScalars[...]
        if leading { while let first = scalars.first, strippable(first) { scalars.removeFirst() } }
        if trailing { while let last = scalars.last, strippable(last) { scalars.removeLast() } }
        return String(String.UnicodeScalarView(scalars))
    }

    /// Python's `str.capitalize`: the first code point upper-cased, the rest lower-cased.
    static func capitalized(_ text: String) -> String {
        guard let first = text.unicodeScalars.first else { return "" }
        return String(first).uppercased() + String(String.UnicodeScalarView(text.unicodeScalars.dropFirst())).lowercased()
    }

    /// Python's `str.title`: the first letter of each run of letters upper-cased, the rest lower.
    static func titleCased(_ text: String) -> String {
        var result = ""
        var previousIsLetter = false
        for character in text {
            let isLetter = character.isLetter
            result += isLetter ? (previousIsLetter ? character.lowercased() : character.uppercased()) : String(character)
            previousIsLetter = isLetter
        }
        return result
    }

    /// Python's `str.replace(old, new, count)`, refusing a result above `limit` scalars.
    static func replace(_ text: String, _ old: String, _ new: String, count: Int, limit: Int) throws -> String {
        let pieces: [String]
        if old.isEmpty {
            pieces = [""] + text.map { String($0) } + [""]
        } else {
            pieces = text.pythonSplit(old)
        }
        var result = ""
        var replaced = 0
        for (index, piece) in pieces.enumerated() {
            if index > 0 {
                if count < 0 || replaced < count {
                    result += new
                    replaced += 1
                } else {
                    result += old
                }
            }
            result += piece
            if result.unicodeScalars.count > limit { throw TemplateRenderError("replace result exceeds the size limit") }
        }
        return result
    }
}

extension String {
    /// Splits on every occurrence of `separator` (non-empty), as Python's `str.split(sep)` does.
    func pythonSplit(_ separator: String) -> [String] {
        let scalars = Array(unicodeScalars)
        let pattern = Array(separator.unicodeScalars)
        var pieces: [String] = []
        var current = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            if index + pattern.count <= scalars.count && Array(scalars[index..<index + pattern.count]) == pattern {
                pieces.append(String(current))
                current = String.UnicodeScalarView()
                index += pattern.count
            } else {
                current.append(scalars[index])
                index += 1
            }
        }
        pieces.append(String(current))
        return pieces
    }
}
