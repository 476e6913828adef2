import Glibc

/// Evaluating expressions: names, literals, attribute and item access, slices, operators.
extension TemplateRenderer {
    mutating func evaluate(_ expression: TemplateExpression) throws -> TemplateValue {
        do {
            return try evaluateUnlocated(expression)
        } catch let error as TemplateRenderError {
            throw source.error(error.reason, at: expression.offset)
        }
    }

    private mutating func evaluateUnlocated(_ expression: TemplateExpression) throws -> TemplateValue {
        switch expression.kind {
        case .literal(let value):
            return value
        case .variable(let name):
            return lookup(name) ?? .undefined("'\(name)' is undefined")
        case .list(let items):
            let value = TemplateValue.list(try items.map { try evaluate($0) })
            try checkNesting(value)
            return value
        case .tuple(let items):
            let value = TemplateValue.tuple(try items.map { try evaluate($0) })
            try checkNesting(value)
            return value
        case .dict(let pairs):
            var dict = TemplateDict()
            for (keyExpression, valueExpression) in pairs {
                guard case .string(let key) = try evaluate(keyExpression) else {
                    throw source.error("only string keys are supported in a dict literal", at: keyExpression.offset)
                }
                dict[key] = try evaluate(valueExpression)
            }
            try checkNesting(.dict(dict))
            return .dict(dict)
        case .attribute(let target, let name):
            return try attribute(of: try evaluate(target), name)
        case .index(let target, let key):
            return try item(of: try evaluate(target), try evaluate(key))
        case .slice(let target, let start, let stop, let step):
            return try slice(try evaluate(target), try start.map { try evaluate($0) },
                             try stop.map { try evaluate($0) }, try step.map { try evaluate($0) })
        case .call(let target, let arguments):
            return try call(try evaluate(target), try evaluateArguments(arguments))
        case .filter(let target, let name, let arguments):
            return try applyFilter(name, try evaluate(target), try evaluateArguments(arguments), at: expression.offset)
        case .test(let target, let name, let arguments, let negated):
            let result = try applyTest(name, try evaluate(target), try evaluateArguments(arguments), at: expression.offset)
            return .bool(result != negated)
        case .not(let operand):
            return .bool(!(try evaluate(operand).isTruthy))
        case .negate(let operand):
            switch try evaluate(operand) {
            case .int(let value) where value != Int.min: return .int(-value)
            case .bool(let value): return .int(value ? -1 : 0)
            case .double(let value): return .double(-value)
            case let value: throw TemplateRenderError(undefinedReason(value) ?? "bad operand type for unary -: '\(value.typeName)'")
            }
        case .plus(let operand):
            let value = try evaluate(operand)
            guard value.numeric != nil else {
                throw TemplateRenderError(undefinedReason(value) ?? "bad operand type for unary +: '\(value.typeName)'")
            }
            return value
        case .and(let left, let right):
            let value = try evaluate(left)
            return value.isTruthy ? try evaluate(right) : value
        case .or(let left, let right):
            let value = try evaluate(left)
            return value.isTruthy ? value : try evaluate(right)
        case .conditional(let condition, let then, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(then) }
            return try otherwise.map { try evaluate($0) } ?? .undefined("the conditional expression has no else")
        case .binary(let op, let left, let right):
            return try binary(op, try evaluate(left), try evaluate(right))
        }
    }

    private mutating func evaluateArguments(_ arguments: TemplateCallArguments) throws -> TemplateArguments {
        TemplateArguments(positional: try arguments.positional.map { try evaluate($0) },
                          keyword: try arguments.keyword.map { ($0.0, try evaluate($0.1)) })
    }

    /// The reason a value is undefined, when it is: using it in arithmetic or as a container is
    /// jinja2's UndefinedError.
    func undefinedReason(_ value: TemplateValue) -> String? {
        if case .undefined(let reason) = value { return reason }
        return nil
    }

    /// `value.name`: a dict member (or a dict/str method), a namespace attribute; missing is Undefined.
    func attribute(of value: TemplateValue, _ name: String) throws -> TemplateValue {
        switch value {
        case .undefined(let reason):
            throw TemplateRenderError(reason)
        case .dict(let dict):
            if Self.methodNames(of: value).contains(name) { return .function(TemplateFunction(name: name, receiver: value)) }
            return dict[name] ?? .undefined("'dict object' has no attribute '\(name)'")
        case .namespace(let namespace):
            return namespace.attributes[name] ?? .undefined("'Namespace object' has no attribute '\(name)'")
        default:
            if Self.methodNames(of: value).contains(name) { return .function(TemplateFunction(name: name, receiver: value)) }
            return .undefined("'\(value.typeName) object' has no attribute '\(name)'")
        }
    }

    /// `value[key]`: list and string indexes (negative from the end), dict keys; missing is Undefined.
    func item(of value: TemplateValue, _ key: TemplateValue) throws -> TemplateValue {
        switch (value, key) {
        case (.undefined(let reason), _):
            throw TemplateRenderError(reason)
        case (.list(let items), .int(let index)), (.tuple(let items), .int(let index)):
            let resolved = index < 0 ? index + items.count : index
            guard resolved >= 0 && resolved < items.count else { return .undefined("list object has no element \(index)") }
            return items[resolved]
        case (.string(let text), .int(let index)):
            let characters = Array(text.unicodeScalars)
            let resolved = index < 0 ? index + characters.count : index
            guard resolved >= 0 && resolved < characters.count else { return .undefined("str object has no element \(index)") }
            return .string(String(characters[resolved]))
        case (.dict(let dict), .string(let name)):
            return dict[name] ?? .undefined("'dict object' has no attribute '\(name)'")
        case (.namespace, .string(let name)), (_, .string(let name)):
            return try attribute(of: value, name)
        default:
            return .undefined("'\(value.typeName) object' has no element \(key.pythonRepr)")
        }
    }

    /// Python slicing of a list or string.
    func slice(_ value: TemplateValue, _ start: TemplateValue?, _ stop: TemplateValue?, _ step: TemplateValue?) throws -> TemplateValue {
        func bound(_ value: TemplateValue?) throws -> Int? {
            switch value {
            case nil, .none?: return nil
            case .int(let number)?: return number
            case let other?: throw TemplateRenderError("slice indices must be integers or None, not \(other.typeName)")
            }
        }
        let stride = try bound(step) ?? 1
        guard stride != 0 else { throw TemplateRenderError("slice step cannot be zero") }
        func pick<T>(_ items: [T]) throws -> [T] {
            let count = items.count
            func clamp(_ index: Int?, _ fallback: Int) -> Int {
                guard var index else { return fallback }
                if index < 0 { index += count }
                return stride > 0 ? min(max(index, 0), count) : min(max(index, -1), count - 1)
            }
            var result: [T] = []
            var index = clamp(try bound(start), stride > 0 ? 0 : count - 1)
            let end = clamp(try bound(stop), stride > 0 ? count : -1)
            while stride > 0 ? index < end : index > end {
                result.append(items[index])
                index += stride
            }
            return result
        }
        switch value {
        case .undefined(let reason): throw TemplateRenderError(reason)
        case .list(let items): return .list(try pick(items))
        case .tuple(let items): return .tuple(try pick(items))
        case .string(let text): return .string(String(String.UnicodeScalarView(try pick(Array(text.unicodeScalars)))))
        default: throw TemplateRenderError("'\(value.typeName)' object is not subscriptable")
        }
    }

    func binary(_ op: String, _ left: TemplateValue, _ right: TemplateValue) throws -> TemplateValue {
        switch op {
        case "==": return .bool(left.pythonEquals(right))
        case "!=": return .bool(!left.pythonEquals(right))
        case "in", "not in":
            let contained: Bool
            switch right {
            case .string(let haystack):
                guard case .string(let needle) = left else {
                    throw TemplateRenderError("'in <string>' requires string as left operand, not \(left.typeName)")
                }
                contained = needle.isEmpty || haystack.contains(needle)
            case .list(let items), .tuple(let items): contained = items.contains { $0.pythonEquals(left) }
            case .dict(let dict):
                if case .string(let key) = left { contained = dict[key] != nil } else { contained = false }
            case .undefined(let reason): throw TemplateRenderError(reason)
            default: throw TemplateRenderError("argument of type '\(right.typeName)' is not iterable")
            }
            return .bool(op == "in" ? contained : !contained)
        case "~":
            let text = left.pythonString + right.pythonString
            try checkSize(text.unicodeScalars.count, at: 0)
            return .string(text)
        case "<", "<=", ">", ">=":
            return .bool(try compare(op, left, right))
        default:
            return try arithmetic(op, left, right)
        }
    }

    private func compare(_ op: String, _ left: TemplateValue, _ right: TemplateValue) throws -> Bool {
        func order<T: Comparable>(_ a: T, _ b: T) -> Bool {
            switch op {
            case "<": return a < b
            case "<=": return a <= b
            case ">": return a > b
            default: return a >= b
            }
        }
        switch (left, right) {
        case (.int(let a), .int(let b)): return order(a, b)
        case (.string(let a), .string(let b)):
            return order(a.unicodeScalars.map(\.value).lexicographicallyPrecedes(b.unicodeScalars.map(\.value)) ? 0 : (a == b ? 1 : 2), 1)
        default:
            if let a = left.numeric, let b = right.numeric { return order(a, b) }
            if let reason = undefinedReason(left) ?? undefinedReason(right) { throw TemplateRenderError(reason) }
            throw TemplateRenderError("'\(op)' not supported between instances of '\(left.typeName)' and '\(right.typeName)'")
        }
    }

    private func arithmetic(_ op: String, _ left: TemplateValue, _ right: TemplateValue) throws -> TemplateValue {
        if let reason = undefinedReason(left) ?? undefinedReason(right) { throw TemplateRenderError(reason) }
        let unsupported = TemplateRenderError("unsupported operand type(s) for \(op): '\(left.typeName)' and '\(right.typeName)'")
        switch (op, left, right) {
        case ("+", .string(let a), .string(let b)):
            try checkSize(a.unicodeScalars.count + b.unicodeScalars.count, at: 0)
            return .string(a + b)
        case ("+", .list(let a), .list(let b)):
            try checkSize(a.count + b.count, at: 0)
            return .list(a + b)
        case ("*", .string(let text), .int(let count)), ("*", .int(let count), .string(let text)):
            let (total, overflow) = text.unicodeScalars.count.multipliedReportingOverflow(by: max(count, 0))
            try checkSize(overflow ? Int.max : total, at: 0)
            return .string(String(repeating: text, count: max(count, 0)))
        case ("*", .list(let items), .int(let count)), ("*", .int(let count), .list(let items)):
            let (total, overflow) = items.count.multipliedReportingOverflow(by: max(count, 0))
            try checkSize(overflow ? Int.max : total, at: 0)
            return .list(Array(repeating: items, count: max(count, 0)).flatMap { $0 })
        default: break
        }
        let integers: (Int, Int)?
        switch (left, right) {
        case (.int(let a), .int(let b)): integers = (a, b)
        case (.bool(let a), .int(let b)): integers = (a ? 1 : 0, b)
        case (.int(let a), .bool(let b)): integers = (a, b ? 1 : 0)
        case (.bool(let a), .bool(let b)): integers = (a ? 1 : 0, b ? 1 : 0)
        default: integers = nil
        }
        if let (a, b) = integers, op != "/" {
            let overflowError = TemplateRenderError("integer result of \(op) is out of range")
            switch op {
            case "+":
                let (value, overflow) = a.addingReportingOverflow(b)
                if overflow { throw overflowError }
                return .int(value)
            case "-":
                let (value, overflow) = a.subtractingReportingOverflow(b)
                if overflow { throw overflowError }
                return .int(value)
            case "*":
                let (value, overflow) = a.multipliedReportingOverflow(by: b)
                if overflow { throw overflowError }
                return .int(value)
            case "//", "%":
                guard b != 0 else { throw TemplateRenderError("integer division or modulo by zero") }
                guard !(a == Int.min && b == -1) else { throw overflowError }
                var quotient = a / b
                var remainder = a % b
                if remainder != 0 && ((remainder < 0) != (b < 0)) {
                    quotient -= 1
                    remainder += b
                }
                return .int(op == "//" ? quotient : remainder)
            case "**":
                guard b >= 0 else { return .double(pow(Double(a), Double(b))) }
                var result = 1
                for _ in 0..<min(b, 64) {
                    let (value, overflow) = result.multipliedReportingOverflow(by: a)
                    if overflow { throw overflowError }
                    result = value
                }
                if b > 64 && !(a == 0 || a == 1 || a == -1) { throw overflowError }
                if b > 64 && a == -1 { result = b % 2 == 0 ? 1 : -1 }
                return .int(result)
            default: throw unsupported
            }
        }
        guard let a = left.numeric, let b = right.numeric else { throw unsupported }
        switch op {
        case "+": return .double(a + b)
        case "-": return .double(a - b)
        case "*": return .double(a * b)
        case "/":
            guard b != 0 else { throw TemplateRenderError("division by zero") }
            return .double(a / b)
        case "//":
            guard b != 0 else { throw TemplateRenderError("float floor division by zero") }
            return .double((a / b).rounded(.down))
        case "%":
            guard b != 0 else { throw TemplateRenderError("float modulo") }
            let remainder = a.truncatingRemainder(dividingBy: b)
            return .double(remainder != 0 && ((remainder < 0) != (b < 0)) ? remainder + b : remainder)
        case "**": return .double(pow(a, b))
        default: throw unsupported
        }
    }
}
