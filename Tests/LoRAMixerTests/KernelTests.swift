import Foundation
import XCTest
@testable import LoRAMixer

/// Optimised kernels against their naive references on odd shapes.
final class KernelTests: XCTestCase {
    private func random(_ count: Int, seed: inout UInt64) -> [Float] {
        (0..<count).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: seed >> 11) % 2000) / 1000 - 1
        }
    }

    func testLinearMatchesReferenceForEveryDTypeAndOddShape() throws {
        var seed: UInt64 = 7
        for (tokens, inFeatures, outFeatures) in [(1, 1, 1), (1, 17, 3), (3, 33, 1), (5, 7, 9), (2, 64, 31), (4, 129, 5)] {
            let values = random(inFeatures * outFeatures, seed: &seed)
            let x = random(tokens * inFeatures, seed: &seed)
            let bias = random(outFeatures, seed: &seed)
            for dtype in [DType.f32, .f16, .bf16] {
                let weight = try matrix(values, rows: outFeatures, cols: inFeatures, dtype: dtype)
                var fast = [Float](repeating: 0, count: tokens * outFeatures)
                var reference = fast
                linearForward(&fast, x, weight, bias: bias, tokens: tokens)
                linearForwardReference(&reference, x, weight, bias: bias, tokens: tokens)
                assertClose(fast, reference, tolerance: 1e-4, "\(dtype) [\(tokens)x\(inFeatures)] -> \(outFeatures)")
            }
        }
    }

    /// A weight matrix stored as `dtype` in a safetensors file, at an odd (unaligned) offset.
    private func matrix(_ values: [Float], rows: Int, cols: Int, dtype: DType) throws -> WeightMatrix {
        let bytes: [UInt8]
        switch dtype {
        case .f16: bytes = values.flatMap { withUnsafeBytes(of: floatToF16($0).littleEndian, Array.init) }
        case .bf16: bytes = values.flatMap { withUnsafeBytes(of: floatToBF16($0).littleEndian, Array.init) }
        default: bytes = values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        }
        let path = NSTemporaryDirectory() + "lmx-kernel-\(UInt64.random(in: 0...UInt64.max)).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SafeTensorsWriter.write([(name: "a", dtype: .u8, shape: [3], data: [1, 2, 3]),
                                     (name: "w", dtype: dtype, shape: [rows, cols], data: bytes)], metadata: [:], to: path)
        return try WeightMatrix(SafeTensorsFile(path: path, mode: .copied).tensor("w"), rows: rows, cols: cols, source: path)
    }
}
