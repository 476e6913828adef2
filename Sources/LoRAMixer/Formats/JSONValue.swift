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
public struct JSONObject: Sendable {
    public private(set) var entries: [(key: String, value: JSONValue)] = []
    private var index = Index.strings([:])

    /// Key -> position in `entries`. Large parsed objects whose keys are all below U+0300 (so in
    /// NFC, where canonical equivalence is byte equality) are indexed by their bytes, which is
    /// several times cheaper to build than a `[String: Int]`; the first change to the object
    /// turns that index into the dictionary.
    private enum Index: Sendable {
        case strings([String: Int])
        case bytes(ByteKeyTable)
    }

    /// Objects parsed with at least this many members may get the byte index.
    static let byteIndexMinimum = 64

    public init() {}

    public var keys: [String] { entries.map(\.key) }
    public var count: Int { entries.count }

    /// Reads a member; assigning replaces the member in place or appends a new one, and
    /// assigning nil removes it.
    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { entries[$0].value } }
        set {
            var positions = stringIndex()
            defer { index = .strings(positions) }
            switch (positions[key], newValue) {
            case let (position?, value?):
                entries[position].value = value
            case let (position?, nil):
                entries.remove(at: position)
                positions[key] = nil
                for index in position..<entries.count { positions[entries[index].key] = index }
            case let (nil, value?):
                positions[key] = entries.count
                entries.append((key, value))
            case (nil, nil):
                break
            }
        }
    }

    private func position(of key: String) -> Int? {
        switch index {
        case .strings(let positions):
            return positions[key]
        case .bytes(let table):
            // a key with a scalar from U+0300 on may equal a stored key under canonical equivalence
            guard Self.isBelowU0300(key) else { return entries.firstIndex { $0.key == key } }
            return table.find(key).map(Int.init)
        }
    }

    /// The position in `entries` of the key made of the bytes `first` then `second`, when the
    /// object has the byte index and the key is below U+0300 too (else nil: ask `self[key]`):
    /// between NFC strings byte equality is String equality.
    func position(bytes first: UnsafeBufferPointer<UInt8>, _ second: UnsafeBufferPointer<UInt8>) -> Int?? {
        guard case .bytes(let table) = index, !first.contains(where: { $0 >= 0xCC }),
              !second.contains(where: { $0 >= 0xCC }) else { return nil }
        return .some(table.find(first, second).map(Int.init))
    }

    /// The index as `[String: Int]`, built from the entries if it was the byte index.
    private mutating func stringIndex() -> [String: Int] {
        switch index {
        case .strings(let positions):
            index = .strings([:])  // keep the dictionary uniquely referenced while it is changed
            return positions
        case .bytes:
            var positions = [String: Int](minimumCapacity: entries.count)
            for (position, entry) in entries.enumerated() { positions[entry.key] = position }
            return positions
        }
    }

    /// Whether every scalar is below U+0300 (every UTF-8 byte below 0xCC): such strings are in
    /// NFC, so two of them are canonically equivalent exactly when their bytes are equal.
    static func isBelowU0300(_ key: String) -> Bool {
        key.utf8.allSatisfy { $0 < 0xCC }
    }

    /// Appends a member unless the key is already present; returns whether it was appended.
    mutating func insertNew(_ key: String, _ value: JSONValue) -> Bool {
        guard position(of: key) == nil else { return false }
        self[key] = value
        return true
    }

    /// An object of `entries` in their order, indexed in one pass with the index sized up front
    /// (the parser's path: a 150k-key vocabulary is hashed once, never rehashed by growth).
    /// Fails with the index of the first entry whose key equals an earlier one's.
    init(uniqueEntries entries: [(key: String, value: JSONValue)]) throws(JSONObjectDuplicateKey) {
        if entries.count >= Self.byteIndexMinimum, entries.count < Int(Int32.max),
           entries.allSatisfy({ Self.isBelowU0300($0.key) }) {
            var table = ByteKeyTable(capacity: entries.count)
            for position in entries.indices where !table.insert(entries[position].key, value: Int32(position)) {
                throw JSONObjectDuplicateKey(index: position)
            }
            self.entries = entries
            self.index = .bytes(table)
            return
        }
        var positions = [String: Int](minimumCapacity: entries.count)
        for position in entries.indices {
            guard positions.updateValue(position, forKey: entries[position].key) == nil else {
                throw JSONObjectDuplicateKey(index: position)
            }
        }
        self.entries = entries
        self.index = .strings(positions)
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
