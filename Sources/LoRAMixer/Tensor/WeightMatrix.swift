/// A read-only `[rows x cols]` row-major weight matrix in f32, f16 or bf16, used where it is
/// stored (a mapped file) or in memory the matrix owns. Rows are converted to f32 as they are
/// read; the stored bytes are never widened as a whole.
public struct WeightMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let dtype: DType
    /// Aligned for `dtype`; valid while `owner` lives.
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
        self.rows = rows
        self.cols = cols
        self.dtype = view.dtype
        if let address = view.bytes.baseAddress, Int(bitPattern: address) % view.dtype.byteSize == 0 {
            base = address
            owner = view.owner
        } else {
            let copy = AlignedBuffer(byteCount: view.bytes.count)
            copy.raw.copyMemory(from: view.bytes)
            base = UnsafeRawPointer(copy.pointer)
            owner = copy
        }
    }

    /// A matrix owning a copy of `values` (f32); callers have checked `values.count == rows * cols`.
    init(rows: Int, cols: Int, values: [Float]) {
        let buffer = AlignedBuffer(byteCount: values.count * MemoryLayout<Float>.stride)
        values.withUnsafeBytes { buffer.raw.copyMemory(from: $0) }
        self.rows = rows
        self.cols = cols
        self.dtype = .f32
        self.base = UnsafeRawPointer(buffer.pointer)
        self.owner = buffer
    }

    public var byteCount: Int { rows * cols * dtype.byteSize }

    /// Row `row` as f32 into `destination` (`cols` floats).
    @inline(__always)
    func loadRow(_ row: Int, into destination: UnsafeMutablePointer<Float>) {
        let start = row * cols
        switch dtype {
        case .f32:
            destination.update(from: base.assumingMemoryBound(to: Float.self) + start, count: cols)
        case .f16:
            let source = base.assumingMemoryBound(to: Float16.self) + start
            for i in 0..<cols { destination[i] = Float(source[i]) }
        default:
            let source = base.assumingMemoryBound(to: UInt16.self) + start
            for i in 0..<cols { destination[i] = bf16ToFloat(source[i]) }
        }
    }

    /// The whole matrix widened to f32 (for small tensors: norms, biases, routers).
    public func floats() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { buffer, count in
            for row in 0..<rows { loadRow(row, into: buffer.baseAddress! + row * cols) }
            count = rows * cols
        }
    }

    /// Borrowed f32 rows when the storage already is f32, so kernels can skip the row copy.
    var f32Base: UnsafePointer<Float>? {
        dtype == .f32 ? base.assumingMemoryBound(to: Float.self) : nil
    }
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
