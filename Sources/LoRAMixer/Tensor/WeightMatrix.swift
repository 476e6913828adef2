internal import CKernels

/// A read-only `[rows x cols]` row-major weight matrix in f32, f16, bf16 or a ggml block format,
/// used where it is stored (a mapped file) or in memory the matrix owns. Rows are converted to
/// f32 as they are read; the stored bytes are never widened as a whole.
public struct WeightMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let type: WeightType
    /// Bytes from one row to the next.
    public let rowBytes: Int
    /// Aligned for the float types' elements; valid while `owner` lives.
    let base: UnsafeRawPointer
    let owner: AnyObject

    /// Wraps a tensor view after checking it is `[rows, cols]` of a floating weight type. Data that
    /// is not aligned for its element type (safetensors does not require it) is copied once.
    public init(_ view: TensorView, rows: Int, cols: Int, source: String) throws {
        guard view.dtype.isFloatingWeight else {
            throw LoRAMixerError.format(
                "\(source): tensor '\(view.name)' has dtype \(view.dtype.rawValue), expected F32, F16 or BF16")
        }
        guard view.shape == [rows, cols] else {
            throw LoRAMixerError.shape(
                "\(source): tensor '\(view.name)' has shape \(view.shape), expected [\(rows), \(cols)]")
        }
        if let address = view.bytes.baseAddress, Int(bitPattern: address) % view.dtype.byteSize == 0 {
            self.init(rows: rows, cols: cols, type: WeightType(view.dtype)!, base: address, owner: view.owner)
        } else {
            try self.init(rows: rows, cols: cols, dtype: view.dtype, copying: view.bytes)
        }
    }

    /// A matrix owning a copy of `values` (f32, row-major).
    public init(rows: Int, cols: Int, values: [Float]) throws {
        self = try values.withUnsafeBytes { try WeightMatrix(rows: rows, cols: cols, dtype: .f32, copying: $0) }
    }

    /// A matrix owning a copy of `bytes`: `rows * cols` elements of `dtype`, row-major, any alignment.
    public init(rows: Int, cols: Int, dtype: DType, copying bytes: UnsafeRawBufferPointer) throws {
        let byteCount = try Self.byteCount(rows: rows, cols: cols, dtype: dtype)
        guard bytes.count == byteCount, let source = bytes.baseAddress else {
            throw LoRAMixerError.shape("a [\(rows), \(cols)] \(dtype.rawValue) matrix needs \(byteCount) bytes, got \(bytes.count)")
        }
        let copy = AlignedBuffer(byteCount: byteCount)
        copy.pointer.copyMemory(from: source, byteCount: byteCount)
        self.init(rows: rows, cols: cols, type: WeightType(dtype)!, base: UnsafeRawPointer(copy.pointer), owner: copy)
    }

    /// A matrix of any weight type over memory someone else owns (a mapped GGUF tensor), used in
    /// place while `owner` lives. Block formats need no alignment; float types not aligned for
    /// their element are copied.
    public init(rows: Int, cols: Int, type: WeightType, borrowing bytes: UnsafeRawBufferPointer, owner: AnyObject, source: String) throws {
        guard rows > 0, cols > 0 else { throw LoRAMixerError.shape("\(source): a weight matrix cannot be [\(rows), \(cols)]") }
        guard let rowBytes = type.rowBytes(cols: cols) else {
            throw LoRAMixerError.shape(
                "\(source): rows of \(cols) elements cannot be stored as \(type.rawValue), whose blocks hold \(type.blockSize)")
        }
        let byteCount = try checkedProduct([rows, rowBytes], "[\(rows), \(cols)] \(type.rawValue) matrix")
        guard bytes.count == byteCount, let address = bytes.baseAddress else {
            throw LoRAMixerError.shape("\(source): a [\(rows), \(cols)] \(type.rawValue) matrix needs \(byteCount) bytes, got \(bytes.count)")
        }
        if !type.isQuantized, Int(bitPattern: address) % type.bytesPerBlock != 0 {
            let copy = AlignedBuffer(byteCount: byteCount)
            copy.pointer.copyMemory(from: address, byteCount: byteCount)
            self.init(rows: rows, cols: cols, type: type, base: UnsafeRawPointer(copy.pointer), owner: copy)
        } else {
            self.init(rows: rows, cols: cols, type: type, base: address, owner: owner)
        }
    }

    /// A matrix owning `bytes`, already laid out as `rows` rows of `type` (quantize-on-load).
    init(rows: Int, cols: Int, type: WeightType, owning buffer: AlignedBuffer) {
        self.init(rows: rows, cols: cols, type: type, base: UnsafeRawPointer(buffer.pointer), owner: buffer)
    }

    /// A matrix over memory someone else owns, used in place while `owner` is kept alive (every
    /// copy of the matrix keeps it). Memory not aligned for `dtype` is copied instead.
    public init(rows: Int, cols: Int, dtype: DType, borrowing base: UnsafeRawPointer, owner: AnyObject) throws {
        let byteCount = try Self.byteCount(rows: rows, cols: cols, dtype: dtype)
        guard Int(bitPattern: base) % dtype.byteSize == 0 else {
            try self.init(rows: rows, cols: cols, dtype: dtype, copying: UnsafeRawBufferPointer(start: base, count: byteCount))
            return
        }
        self.init(rows: rows, cols: cols, type: WeightType(dtype)!, base: base, owner: owner)
    }

    /// A matrix over memory someone else owns; `release` runs once when the matrix and every copy
    /// of it are gone (at once if the memory had to be copied for alignment).
    public init(rows: Int, cols: Int, dtype: DType, borrowing base: UnsafeRawPointer, release: @escaping @Sendable () -> Void) throws {
        try self.init(rows: rows, cols: cols, dtype: dtype, borrowing: base, owner: ReleaseOnDeinit(release))
    }

    private init(rows: Int, cols: Int, type: WeightType, base: UnsafeRawPointer, owner: AnyObject) {
        self.rows = rows
        self.cols = cols
        self.type = type
        rowBytes = type.rowBytes(cols: cols)!
        self.base = base
        self.owner = owner
    }

    private static func byteCount(rows: Int, cols: Int, dtype: DType) throws -> Int {
        guard dtype.isFloatingWeight else {
            throw LoRAMixerError.invalidArgument("weights must be F32, F16 or BF16, not \(dtype.rawValue)")
        }
        guard rows > 0, cols > 0 else { throw LoRAMixerError.shape("a weight matrix cannot be [\(rows), \(cols)]") }
        return try checkedProduct([rows, cols, dtype.byteSize], "[\(rows), \(cols)] \(dtype.rawValue) matrix")
    }

    public var byteCount: Int { rows * rowBytes }

    /// Row `row` as f32 into `destination` (`cols` floats).
    @inline(__always)
    func loadRow(_ row: Int, into destination: UnsafeMutablePointer<Float>) {
        let start = row * cols
        switch type {
        case .f32:
            destination.update(from: base.assumingMemoryBound(to: Float.self) + start, count: cols)
        case .f16:
            let source = base.assumingMemoryBound(to: Float16.self) + start
            for i in 0..<cols { destination[i] = Float(source[i]) }
        case .bf16:
            let source = base.assumingMemoryBound(to: UInt16.self) + start
            for i in 0..<cols { destination[i] = bf16ToFloat(source[i]) }
        default:
            lmxk_dequantize_row_reference(destination, base + row * rowBytes, type.kernelCode, cols)
        }
    }

    /// The whole matrix widened to f32 (for small tensors: norms, biases, routers).
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { buffer, count in
            for row in 0..<rows { loadRow(row, into: buffer.baseAddress! + row * cols) }
            count = rows * cols
        }
    }

}

/// Runs a release callback when the last holder of borrowed memory goes away.
public final class ReleaseOnDeinit: @unchecked Sendable {
    private var release: (@Sendable () -> Void)?
    public init(_ release: @escaping @Sendable () -> Void) { self.release = release }
    /// Gives the memory back to its owner without calling `release` (a failed registration).
    public func disarm() { release = nil }
    deinit { release?() }
}

/// Heap memory aligned to 64 bytes, freed with its owner.
final class AlignedBuffer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }

    var raw: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: pointer, count: byteCount) }

    deinit { pointer.deallocate() }
}
