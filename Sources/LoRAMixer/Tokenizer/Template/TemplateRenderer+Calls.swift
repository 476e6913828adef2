import Glibc

/// Calls: the globals transformers defines (`raise_exception`, `strftime_now`, `namespace`,
/// `dict`) plus `range`, and the str/dict methods templates use. Anything else is an error
/// naming it.
extension TemplateRenderer {
    static let globalFunctions = ["range", "namespace", "dict", "raise_exception", "strftime_now"]

    static func methodNames(of value: TemplateValue) -> Set<String> {
        switch value {
        case .string:
            return ["strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper", "lower", "title",
                    "capitalize", "replace", "join", "find", "count"]
        case .dict:
            return ["items", "keys", "values", "get"]
        default:
            return []
        }
    }

    func call(_ callee: TemplateValue, _ arguments: TemplateArguments) throws -> TemplateValue {
        guard case .function(let function) = callee else {
            if let reason = undefinedReason(callee) { throw TemplateRenderError(reason) }
            throw TemplateRenderError("'\(callee.typeName)' object is not callable")
        }
        if let receiver = function.receiver { return try callMethod(function.name, on: receiver, arguments) }
        switch function.name {
        case "range":
            var bounds: [Int] = []
            for argument in arguments.positional {
                guard case .int(let number) = argument else {
                    throw TemplateRenderError("range() arguments must be integers, not \(argument.typeName)")
                }
                bounds.append(number)
            }
            let (start, stop, step): (Int, Int, Int)
            switch bounds.count {
            case 1: (start, stop, step) = (0, bounds[0], 1)
            case 2: (start, stop, step) = (bounds[0], bounds[1], 1)
            case 3: (start, stop, step) = (bounds[0], bounds[1], bounds[2])
            default: throw TemplateRenderError("range() takes 1 to 3 integer arguments")
            }
            guard step != 0 else { throw TemplateRenderError("range() arg 3 must not be zero") }
            let span = step > 0 ? Double(stop) - Double(start) : Double(start) - Double(stop)
            let count = span <= 0 ? 0.0 : (span / Double(step.magnitude)).rounded(.up)
            guard count <= Double(Self.maximumIterations) else {
                throw TemplateRenderError("range() of \(count < 9e18 ? String(Int(count)) : "too many") items exceeds the limit of \(Self.maximumIterations) loop iterations")
            }
            var values: [TemplateValue] = []
            var current = start
            while step > 0 ? current < stop : current > stop {
                values.append(.int(current))
                let (next, overflow) = current.addingReportingOverflow(step)
                if overflow { break }
                current = next
            }
            try budget.charge(values.count)
            return .list(values)
        case "namespace", "dict":
            var attributes = TemplateDict()
            for argument in arguments.positional {
                guard case .dict(let dict) = argument else {
                    throw TemplateRenderError("\(function.name)() takes a dict or keyword arguments, not \(argument.typeName)")
                }
                for (key, value) in dict.items { attributes[key] = value }
            }
            for (key, value) in arguments.keyword { attributes[key] = value }
            try checkNesting(.dict(attributes))
            if function.name == "dict" { return .dict(attributes) }
            try budget.countNamespace()
            if let bad = attributes.keys.first(where: { $0.hasPrefix("_") }) {
                throw TemplateRenderError("a namespace attribute cannot start with '_' ('\(bad)')")
            }
            return .namespace(TemplateNamespace(attributes))
        case "raise_exception":
            throw ChatTemplateRaised(message: arguments.value(0, "message")?.pythonString ?? "")
        case "strftime_now":
            guard case .string(let format)? = arguments.value(0, "format") else {
                throw TemplateRenderError("strftime_now() needs a format string")
            }
            return .string(try Self.formatNow(format))
        default:
            throw TemplateRenderError("unknown function '\(function.name)'")
        }
    }

    private static func formatNow(_ format: String) throws -> String {
        var now = time(nil)
        var parts = tm()
        guard localtime_r(&now, &parts) != nil else { throw TemplateRenderError("strftime_now(): cannot read the time") }
        var buffer = [CChar](repeating: 0, count: 512)
        let written = strftime(&buffer, buffer.count, format, &parts)
        guard written > 0 || format.isEmpty else { throw TemplateRenderError("strftime_now(): the formatted time is too long") }
        return String(decoding: buffer[0..<written].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func callMethod(_ name: String, on receiver: TemplateValue, _ arguments: TemplateArguments) throws -> TemplateValue {
        switch receiver {
        case .dict(let dict):
            switch name {
            case "items": return .list(dict.items.map { .tuple([.string($0.0), $0.1]) })
            case "keys": return .list(dict.keys.map { .string($0) })
            case "values": return .list(dict.values)
            case "get":
                guard case .string(let key)? = arguments.value(0, "key") else { return arguments.value(1, "default") ?? .none }
                return dict[key] ?? arguments.value(1, "default") ?? .none
            default: break
            }
        case .string(let text):
            return try callStringMethod(name, text, arguments)
        default: break
        }
        throw TemplateRenderError("unknown method '\(name)' of '\(receiver.typeName)'")
    }

    private func callStringMethod(_ name: String, _ text: String, _ arguments: TemplateArguments) throws -> TemplateValue {
        func stringArgument(_ index: Int, _ label: String) throws -> String? {
            switch arguments.value(index, label) {
            case nil, .none?: return nil
            case .string(let value)?: return value
            case let other?: throw TemplateRenderError("\(name)() argument must be str or None, not \(other.typeName)")
            }
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            return .string(Self.strip(text, characters: try stringArgument(0, "chars"),
                                      leading: name != "rstrip", trailing: name != "lstrip"))
        case "startswith", "endswith":
            var candidates: [String] = []
            switch arguments.value(0, name == "startswith" ? "prefix" : "suffix") {
            case .string(let value)?: candidates = [value]
            case .list(let values)?, .tuple(let values)?: candidates = values.compactMap { if case .string(let value) = $0 { return value } else { return nil } }
            default: throw TemplateRenderError("\(name)() needs a string or a tuple of strings")
            }
            let scalars = Array(text.unicodeScalars)
            return .bool(candidates.contains { candidate in
                let pattern = Array(candidate.unicodeScalars)
                guard pattern.count <= scalars.count else { return false }
                return name == "startswith" ? Array(scalars.prefix(pattern.count)) == pattern
                    : Array(scalars.suffix(pattern.count)) == pattern
            })
        case "split":
            var maxSplit = -1
            if case .int(let limit)? = arguments.value(1, "maxsplit") { maxSplit = limit }
            if let separator = try stringArgument(0, "sep") {
                guard !separator.isEmpty else { throw TemplateRenderError("empty separator") }
                var pieces = text.pythonSplit(separator)
                if maxSplit >= 0 && pieces.count > maxSplit + 1 {
                    let rest = pieces[maxSplit...].joined(separator: separator)
                    pieces = Array(pieces[..<maxSplit]) + [rest]
                }
                return .list(pieces.map { .string($0) })
            }
            var pieces: [String] = []
            var remaining = Substring(Self.strip(text, characters: nil, leading: true, trailing: false))
            while !remaining.isEmpty {
                if maxSplit >= 0 && pieces.count == maxSplit {
                    pieces.append(String(remaining))
                    break
                }
                let end = remaining.firstIndex { $0.isWhitespace } ?? remaining.endIndex
                pieces.append(String(remaining[..<end]))
                remaining = remaining[end...].drop { $0.isWhitespace }
            }
            return .list(pieces.map { .string($0) })
        case "upper": return .string(text.uppercased())
        case "lower": return .string(text.lowercased())
        case "title": return .string(Self.titleCased(text))
        case "capitalize": return .string(Self.capitalized(text))
        case "replace":
            guard let old = try stringArgument(0, "old"), let new = try stringArgument(1, "new") else {
                throw TemplateRenderError("replace() needs two strings")
            }
            var count = -1
            if case .int(let limit)? = arguments.value(2, "count") { count = limit }
            return .string(try Self.replace(text, old, new, count: count, limit: Self.maximumOutputScalars))
        case "join":
            guard let items = arguments.value(0, "iterable") else { throw TemplateRenderError("join() needs an iterable") }
            let parts = try iterate(items, at: 0)
            let strings = try parts.map { part -> String in
                guard case .string(let value) = part else {
                    throw TemplateRenderError("sequence item: expected str instance, \(part.typeName) found")
                }
                return value
            }
            return .string(strings.joined(separator: text))
        case "find", "count":
            guard let needle = try stringArgument(0, "sub") else { throw TemplateRenderError("\(name)() needs a string") }
            let pieces = text.pythonSplit(needle)
            if name == "count" { return .int(needle.isEmpty ? text.unicodeScalars.count + 1 : pieces.count - 1) }
            return .int(pieces.count > 1 || needle.isEmpty ? pieces[0].unicodeScalars.count : -1)
        default:
            throw TemplateRenderError("unknown method '\(name)' of 'str'")
        }
    }
}

/// `raise_exception(message)` was called by the template.
struct ChatTemplateRaised: Error {
    let message: String
}
