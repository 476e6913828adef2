internal import CKernels

/// How a weight matrix stores its elements: plain floats, or one of ggml's block-quantized formats
/// (a row is a run of blocks, each holding 32 or 256 elements with their scales). Raw values are
/// ggml's type names, as `lmx inspect` prints them and `lmx quantize --type` takes them (lowercase).
public enum WeightType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"
    case q8_0 = "Q8_0", q4_0 = "Q4_0", q4_1 = "Q4_1", q5_0 = "Q5_0", q5_1 = "Q5_1"
    case q4_K = "Q4_K", q5_K = "Q5_K", q6_K = "Q6_K"

    /// The CKernels type code (`LMXK_*`).
    var kernelCode: Int32 {
        switch self {
        case .f32: Int32(LMXK_F32)
        case .f16: Int32(LMXK_F16)
        case .bf16: Int32(LMXK_BF16)
        case .q8_0: Int32(LMXK_Q8_0)
        case .q4_0: Int32(LMXK_Q4_0)
        case .q4_1: Int32(LMXK_Q4_1)
        case .q5_0: Int32(LMXK_Q5_0)
        case .q5_1: Int32(LMXK_Q5_1)
        case .q4_K: Int32(LMXK_Q4_K)
        case .q5_K: Int32(LMXK_Q5_K)
        case .q6_K: Int32(LMXK_Q6_K)
        }
    }

    public var isQuantized: Bool { blockSize > 1 }

    /// Elements per block: 1 for the float types, 32 or 256 for the quantized ones.
    public var blockSize: Int { lmxk_type_block_size(kernelCode) }

    /// Bytes per block.
    public var bytesPerBlock: Int { lmxk_type_block_bytes(kernelCode) }

    /// Bytes of a row of `cols` elements; nil when `cols` is not a multiple of the block size.
    public func rowBytes(cols: Int) -> Int? {
        guard cols > 0, cols % blockSize == 0 else { return nil }
        return cols / blockSize * bytesPerBlock
    }

    /// The float type of a safetensors dtype (F32, F16, BF16), nil for the others.
    public init?(_ dtype: DType) {
        switch dtype {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        default: return nil
        }
    }

    /// The weight type of a ggml type id, nil for the types loramixer does not compute with.
    public init?(_ type: GGMLType) {
        guard let match = Self.allCases.first(where: { $0.ggmlType == type }) else { return nil }
        self = match
    }

    public var ggmlType: GGMLType {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        case .q5_0: .q5_0
        case .q5_1: .q5_1
        case .q4_K: .q4_K
        case .q5_K: .q5_K
        case .q6_K: .q6_K
        }
    }

    /// The names loramixer computes with, for error messages.
    static var supportedNames: String { allCases.map(\.rawValue).joined(separator: ", ") }
}
