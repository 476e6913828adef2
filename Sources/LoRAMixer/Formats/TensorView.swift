/// Where one tensor lives in its file and what it holds.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Absolute byte range in the file (the header's offsets plus the data section's start).
    public let byteRange: Range<Int>
    public let elementCount: Int
}

/// A tensor's bytes inside an open file. The view keeps the file's memory alive, so it stays
/// valid after the `SafeTensorsFile` that made it is gone. The bytes may be unaligned.
public struct TensorView: @unchecked Sendable {
    /// The file the tensor came from, for error messages.
    public let path: String
    public let info: TensorInfo
    public let bytes: UnsafeRawBufferPointer
    let owner: AnyObject

    public var name: String { info.name }
    public var dtype: DType { info.dtype }
    public var shape: [Int] { info.shape }
    public var elementCount: Int { info.elementCount }

    /// Throws a shape error naming the file and tensor unless the tensor has exactly `expected`.
    public func expectShape(_ expected: [Int]) throws {
        guard shape == expected else {
            throw LoRAMixerError.shape("\(path): tensor '\(name)' has shape \(shape), expected \(expected)")
        }
    }

    /// The elements widened to `Float`; only F32, F16 and BF16 tensors qualify.
    public func floats() throws -> [Float] {
        guard dtype.isFloatingWeight else { throw wrongDType("F32, F16 or BF16") }
        return try [Float](unsafeUninitializedCapacity: elementCount) { buffer, initialized in
            try convertToFloat(bytes, dtype: dtype, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<elementCount]))
            initialized = elementCount
        }
    }

    public func int32s() throws -> [Int32] { try integers(.i32) }

    public func int64s() throws -> [Int64] { try integers(.i64) }

    private func integers<T: FixedWidthInteger>(_ expected: DType) throws -> [T] {
        guard dtype == expected else { throw wrongDType(expected.rawValue) }
        return (0..<elementCount).map {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))
        }
    }

    private func wrongDType(_ expected: String) -> LoRAMixerError {
        .format("\(path): tensor '\(name)' has dtype \(dtype.rawValue), expected \(expected)")
    }
}
