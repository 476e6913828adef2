/// bfloat16 is the top half of an IEEE binary32, so widening is a shift.
@inlinable
public func bf16ToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// Narrows to bfloat16 rounding to nearest, ties to even, as PyTorch does, so weights we write
/// match the reference bit for bit. Overflow rounds to infinity; NaN stays a (quiet) NaN instead
/// of being rounded into infinity.
@inlinable
public func floatToBF16(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits + roundingBias) >> 16)
}

@inlinable
public func f16ToFloat(_ bits: UInt16) -> Float {
    Float(Float16(bitPattern: bits))
}

/// Narrows to IEEE binary16 with Swift's conversion (round to nearest even).
@inlinable
public func floatToF16(_ value: Float) -> UInt16 {
    Float16(value).bitPattern
}

/// Widens little-endian F32, F16 or BF16 elements to `Float`. `raw` points into a file whose
/// tensors need not be aligned, so every element is loaded unaligned.
public func convertToFloat(
    _ raw: UnsafeRawBufferPointer, dtype: DType, into output: UnsafeMutableBufferPointer<Float>
) throws {
    guard dtype.isFloatingWeight else {
        throw LoRAMixerError.invalidArgument("convertToFloat: dtype \(dtype.rawValue) is not F32, F16 or BF16")
    }
    guard raw.count == output.count * dtype.byteSize else {
        throw LoRAMixerError.invalidArgument(
            "convertToFloat: \(raw.count) bytes of \(dtype.rawValue) do not fill \(output.count) floats")
    }
    switch dtype {
    case .f32:
        for index in output.indices {
            output[index] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
        }
    case .f16:
        for index in output.indices {
            output[index] = f16ToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        }
    default:
        for index in output.indices {
            output[index] = bf16ToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        }
    }
}
