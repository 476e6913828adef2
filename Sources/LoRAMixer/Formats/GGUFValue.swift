/// The value types a GGUF metadata entry can hold, by their on-disk id (gguf v2/v3).
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The lowercase name `gguf`'s GGUFValueType uses, e.g. `uint32`, `string`, `array`.
    public var name: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .uint32: "uint32"
        case .int32: "int32"
        case .float32: "float32"
        case .bool: "bool"
        case .string: "string"
        case .array: "array"
        case .uint64: "uint64"
        case .int64: "int64"
        case .float64: "float64"
        }
    }

    public var isInteger: Bool {
        switch self {
        case .uint8, .int8, .uint16, .int16, .uint32, .int32, .uint64, .int64: true
        default: false
        }
    }

    /// Bytes one value of this type takes at the least: its fixed size, or for a string its
    /// 8-byte length and for an array its 4-byte type and 8-byte count. Bounds array counts.
    var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }
}

/// One GGUF metadata value, as stored: the integer and float widths are kept, so a reader can
/// tell `uint32` from `int32` (a writer round-trips them).
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// The declared element type (for an empty array the only record of it) and the elements.
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }

    /// `array[uint32]`, `array[array[string]]`, or the plain type name.
    public var typeDescription: String {
        guard case .array(let elementType, let elements) = self else { return type.name }
        if elementType == .array, let first = elements.first { return "array[\(first.typeDescription)]" }
        return "array[\(elementType.name)]"
    }

    /// Any integer type whose value fits in `Int` (a `uint64` above `Int.max` is nil).
    public var int: Int? {
        switch self {
        case .uint8(let value): Int(value)
        case .int8(let value): Int(value)
        case .uint16(let value): Int(value)
        case .int16(let value): Int(value)
        case .uint32(let value): Int(value)
        case .int32(let value): Int(value)
        case .uint64(let value): Int(exactly: value)
        case .int64(let value): Int(value)
        default: nil
        }
    }

    /// A `float32` or `float64`, widened.
    public var double: Double? {
        switch self {
        case .float32(let value): Double(value)
        case .float64(let value): value
        default: nil
        }
    }

    public var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }

    public var array: [GGUFValue]? {
        if case .array(_, let elements) = self { return elements }
        return nil
    }
}

/// One metadata entry, in file order.
public struct GGUFMetadataEntry: Equatable, Sendable {
    public let key: String
    public let value: GGUFValue
}
