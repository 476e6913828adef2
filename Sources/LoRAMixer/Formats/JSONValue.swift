/// A parsed JSON document. Numbers keep their literal text so that 64-bit integers (tensor
/// offsets, token ids) survive exactly; the accessors convert on demand and answer nil when the
/// value is not of the asked-for kind.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number's literal text as it appeared in the document, e.g. `"-12"` or `"1.5e3"`.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// A number from an integer.
    public init(_ value: Int) { self = .number(String(value)) }

    /// A number from a double, written in the shortest form that reads back to the same value.
    /// JSON has no spelling for infinity or NaN, so those become `null`, as in JavaScript.
    public init(_ value: Double) { self = value.isFinite ? .number(value.description) : .null }

    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The number as an exact integer: nil for fractions, exponents (even integral ones such as
    /// `1e3`) and values outside `Int`'s range, so callers never receive a silently rounded size.
    public var int: Int? {
        if case .number(let text) = self { return Int(text) }
        return nil
    }

    public var double: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var array: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var object: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The kind's name, for error messages that say what was found instead of what was expected.
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON object that keeps its members in document order (written files stay diffable and
/// error messages can follow the file) while still looking members up by key in O(1).
/// Keys are unique: the parser refuses duplicates, and assigning to an existing key replaces it.
/// Keys compare by their scalars, as JSON defines, not by canonical equivalence as `String` does.
public struct JSONObject: Sendable {
    public private(set) var entries: [(key: String, value: JSONValue)] = []
    private var positions: [ScalarString: Int] = [:]

    public init() {}

    public var keys: [String] { entries.map(\.key) }
    public var count: Int { entries.count }

    /// Reads a member; assigning replaces the member in place or appends a new one, and
    /// assigning nil removes it.
    public subscript(key: String) -> JSONValue? {
        get { positions[ScalarString(key)].map { entries[$0].value } }
        set {
            let key = ScalarString(key)
            switch (positions[key], newValue) {
            case let (position?, value?):
                entries[position].value = value
            case let (position?, nil):
                entries.remove(at: position)
                positions[key] = nil
                for index in position..<entries.count { positions[ScalarString(entries[index].key)] = index }
            case let (nil, value?):
                _ = insertNew(key.text, value)
            case (nil, nil):
                break
            }
        }
    }

    /// An object of `entries` in their order, indexed in one pass with the index sized up front
    /// (the parser's path: a 150k-key vocabulary is hashed once, never rehashed by growth).
    /// Fails with the index of the first entry whose key equals an earlier one's.
    init(uniqueEntries entries: [(key: String, value: JSONValue)]) throws(JSONObjectDuplicateKey) {
        var positions = [ScalarString: Int](minimumCapacity: entries.count)
        for position in entries.indices {
            guard positions.updateValue(position, forKey: ScalarString(entries[position].key)) == nil else {
                throw JSONObjectDuplicateKey(index: position)
            }
        }
        self.entries = entries
        self.positions = positions
    }

    /// Appends a member unless the key is already present; returns whether it was appended.
    mutating func insertNew(_ key: String, _ value: JSONValue) -> Bool {
        guard positions[ScalarString(key)] == nil else { return false }
        positions[ScalarString(key)] = entries.count
        entries.append((key, value))
        return true
    }
}

/// The entry of `JSONObject(uniqueEntries:)` that repeats an earlier key.
struct JSONObjectDuplicateKey: Error {
    let index: Int
}

extension JSONObject: Equatable {
    /// Objects are equal when they have the same members, in any order, as JSON defines.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.count == rhs.count && lhs.entries.allSatisfy { rhs[$0.key] == $0.value }
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    /// Members in literal order; a repeated key keeps its first position and its last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (key, value) in elements { self[key] = value }
    }
}
