/// A value while a chat template renders: the Python objects a Jinja template sees when
/// transformers renders it (None, bool, int, float, str, list, dict, namespace), plus Jinja's
/// Undefined, which remembers why it is undefined so a later misuse can say so.
indirect enum TemplateValue {
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([TemplateValue])
    /// A Python tuple (from `(a, b)`, `items()`, `| items`): a list that prints with parentheses.
    case tuple([TemplateValue])
    case dict(TemplateDict)
    case namespace(TemplateNamespace)
    /// A global function (`range`, `namespace`, `raise_exception`, ...) or a bound method.
    case function(TemplateFunction)

    /// Python's name for the type, as jinja2's messages spell it.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// Python truthiness (Undefined is false).
    var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let value): return value
        case .int(let value): return value != 0
        case .double(let value): return value != 0
        case .string(let value): return !value.isEmpty
        case .list(let value), .tuple(let value): return !value.isEmpty
        case .dict(let value): return value.count > 0
        case .namespace, .function: return true
        }
    }
}

/// A Python dict with string keys that keeps insertion order.
struct TemplateDict {
    private(set) var keys: [String] = []
    private var storage: [String: TemplateValue] = [:]

    init() {}

    var count: Int { keys.count }

    subscript(key: String) -> TemplateValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    var values: [TemplateValue] { keys.compactMap { storage[$0] } }
    var items: [(String, TemplateValue)] { keys.compactMap { key in storage[key].map { (key, $0) } } }
}

/// `namespace(...)`: the one mutable object a template can write through `set ns.attr = value`.
final class TemplateNamespace {
    var attributes = TemplateDict()
    init(_ attributes: TemplateDict) { self.attributes = attributes }
}

/// A callable: its name (for error messages) and, for a bound method, the receiver.
struct TemplateFunction {
    let name: String
    let receiver: TemplateValue?
}

/// A call's arguments: positional first, then keyword, as Jinja passes them.
struct TemplateArguments {
    var positional: [TemplateValue] = []
    var keyword: [(String, TemplateValue)] = []

    /// The argument at `index` or named `name`, or nil when neither was given.
    func value(_ index: Int, _ name: String) -> TemplateValue? {
        if index < positional.count { return positional[index] }
        return keyword.first { $0.0 == name }?.1
    }
}
