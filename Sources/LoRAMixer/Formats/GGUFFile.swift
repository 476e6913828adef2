/// One tensor's entry in a GGUF file's tensor-info table.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    public let type: GGMLType
    /// As stored, in ggml order: `dimensions[0]` varies fastest (a row's length).
    public let dimensions: [Int]
    public let elementCount: Int
    /// The stored offset, relative to the start of the data section (`GGUFFile.dataOffset`).
    public let offset: Int
    /// Where the tensor's bytes lie in the file; nil when `type` is not in ggml's table this reader
    /// knows (then only the start is checked: aligned, inside the file, after the previous tensor).
    public let byteRange: Range<Int>?

    /// Row-major (numpy / PyTorch) order: `dimensions` reversed.
    public var shape: [Int] { dimensions.reversed() }
}

/// One `.gguf` file (versions 2 and 3, little-endian): its header, metadata and tensor infos,
/// validated in full when opened (see `GGUFFile+Parsing`, `GGUFFile+Validation`), so every later
/// access is a lookup. Tensor data is not interpreted here; `withTensorBytes` hands out a tensor's
/// raw bytes. Immutable after init and safe to share across threads.
public final class GGUFFile: Sendable {
    public let path: String
    /// 2 or 3.
    public let version: UInt32
    /// Every metadata entry in file order; keys are unique.
    public let metadata: [GGUFMetadataEntry]
    /// In file order; names are unique.
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment`, or 32 when absent.
    public let alignment: Int
    /// Where the data section starts: the end of the tensor infos rounded up to `alignment`.
    public let dataOffset: Int
    private let valueIndex: [String: Int]
    private let tensorIndex: [String: Int]
    private let storage: FileBytes

    public static let defaultAlignment = 32

    public init(path: String, mode: LoadMode = .mapped) throws {
        storage = try FileBytes(path: path, mode: mode, minimumSize: 8)
        let contents = try Self.read(storage.bytes, path: path)
        self.path = path
        version = contents.version
        metadata = contents.metadata
        tensors = contents.tensors
        alignment = contents.alignment
        dataOffset = contents.dataOffset
        // Both unique: the parser refuses duplicate keys and names.
        valueIndex = Dictionary(uniqueKeysWithValues: metadata.enumerated().map { ($1.key, $0) })
        tensorIndex = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    public func value(_ key: String) -> GGUFValue? { valueIndex[key].map { metadata[$0].value } }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// Calls `body` with the tensor's raw bytes (valid only inside `body`). Throws `.notFound` for
    /// an unknown name and `.format` for a ggml type this reader has no block layout for.
    public func withTensorBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let info = tensor(name) else { throw LoRAMixerError.notFound("\(path): no tensor '\(name)'") }
        guard let range = info.byteRange else {
            throw LoRAMixerError.format(
                "\(path): tensor '\(name)' has ggml type id \(info.type.id), which this reader does not know the size of")
        }
        return try body(UnsafeRawBufferPointer(rebasing: storage.bytes[range]))
    }
}

/// Typed getters: nil when the key is absent, a format error naming the key and both types when it
/// holds something else.
extension GGUFFile {
    private func typed<T>(_ key: String, _ expected: String, _ extract: (GGUFValue) -> T?) throws -> T? {
        guard let value = value(key) else { return nil }
        guard let result = extract(value) else {
            throw LoRAMixerError.format("\(path): metadata '\(key)' is \(value.typeDescription), expected \(expected)")
        }
        return result
    }

    public func string(_ key: String) throws -> String? { try typed(key, "string") { $0.string } }

    public func bool(_ key: String) throws -> Bool? { try typed(key, "bool") { $0.bool } }

    /// Exactly a `uint32` (as `general.alignment` and most counts are written).
    public func uint32(_ key: String) throws -> UInt32? {
        try typed(key, "uint32") { if case .uint32(let value) = $0 { value } else { nil } }
    }

    /// Any integer type whose value fits in `Int`.
    public func int(_ key: String) throws -> Int? { try typed(key, "an integer within Int's range") { $0.int } }

    /// `float32` or `float64`, widened.
    public func double(_ key: String) throws -> Double? { try typed(key, "float32 or float64") { $0.double } }

    public func strings(_ key: String) throws -> [String]? {
        try typed(key, "array[string]") { value in
            guard case .array(.string, let elements) = value else { return nil }
            return elements.compactMap(\.string)
        }
    }

    /// An array of `float32` (exact) or `float64` (rounded to nearest).
    public func floats(_ key: String) throws -> [Float]? {
        try typed(key, "array[float32]") { value in
            guard case .array(let type, let elements) = value, type == .float32 || type == .float64 else { return nil }
            return elements.compactMap { $0.double.map(Float.init) }
        }
    }

    /// An array of any integer type, every element fitting in `Int`.
    public func ints(_ key: String) throws -> [Int]? {
        try typed(key, "an array of integers within Int's range") { value in
            guard case .array(let type, let elements) = value, type.isInteger else { return nil }
            let ints = elements.compactMap(\.int)
            return ints.count == elements.count ? ints : nil
        }
    }
}
