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

    /// The widest instruction set this CPU allows.
    private var kernelISACeiling: KernelISA {
        let previous = setMaxKernelISA(.avx512)
        defer { setMaxKernelISA(previous) }
        return kernelISA
    }

    /// The AVX-512, AVX2 and portable kernels, alone and split across a pool, against the naive reference:
    /// odd sizes (not multiples of 8 or 4), one row, one column, 1-5 tokens (every block path) and a
    /// longer batch (rows widened once per block).
    func testLinearMatchesReferenceForEveryDTypePathAndOddShape() throws {
        var seed: UInt64 = 7
        let pool = ThreadPool(threads: 3)
        defer { setMaxKernelISA(.avx512) }
        for (tokens, inFeatures, outFeatures) in [(1, 1, 1), (1, 17, 3), (3, 33, 1), (5, 7, 9), (2, 64, 31), (4, 129, 5),
                                                  (1, 576, 37), (9, 100, 13), (2, 8, 4), (1, 100, 17), (1, 40, 8)] {
            let values = random(inFeatures * outFeatures, seed: &seed)
            let x = random(tokens * inFeatures, seed: &seed)
            let bias = random(outFeatures, seed: &seed)
            for dtype in [DType.f32, .f16, .bf16] {
                let weight = try storedMatrix(values, rows: outFeatures, cols: inFeatures, dtype: dtype)
                var reference = [Float](repeating: 0, count: tokens * outFeatures)
                linearForwardReference(&reference, x, weight, bias: bias, tokens: tokens)
                // Every instruction set this CPU has, capped from the widest down to portable C.
                for isa in KernelISA.allCases.reversed() where isa.rawValue <= kernelISACeiling.rawValue {
                    setMaxKernelISA(isa)
                    for threads in [nil, pool] {
                        var fast = [Float](repeating: .nan, count: tokens * outFeatures)
                        linearForward(&fast, x, weight, bias: bias, tokens: tokens, pool: threads)
                        assertClose(fast, reference, tolerance: 1e-4,
                                    "\(dtype) [\(tokens)x\(inFeatures)] -> \(outFeatures) isa=\(isa) pool=\(threads != nil)")
                    }
                }
            }
        }
    }

    /// Projections sharing an input, run in one parallel region, equal each run on its own.
    func testGroupedLinearMatchesEachAlone() throws {
        var seed: UInt64 = 11
        let pool = ThreadPool(threads: 2)
        let (tokens, inFeatures) = (3, 37)
        let x = random(tokens * inFeatures, seed: &seed)
        let weights = try [(13, DType.f32), (5, .bf16), (21, .f16)].map { rows, dtype in
            try storedMatrix(random(rows * inFeatures, seed: &seed), rows: rows, cols: inFeatures, dtype: dtype)
        }
        let biases = weights.map { random($0.rows, seed: &seed) }
        let outputs = weights.map { UnsafeMutablePointer<Float>.allocate(capacity: tokens * $0.rows) }
        defer { outputs.forEach { $0.deallocate() } }
        withOptionalPointers(biases) { pointers in
            linearForward(outputs, x, weights, biases: pointers, tokens: tokens, pool: pool)
        }
        for (i, weight) in weights.enumerated() {
            var reference = [Float](repeating: 0, count: tokens * weight.rows)
            linearForwardReference(&reference, x, weight, bias: biases[i], tokens: tokens)
            assertClose(Array(UnsafeBufferPointer(start: outputs[i], count: tokens * weight.rows)), reference,
                        tolerance: 1e-4, "grouped projection \(i)")
        }
    }

    func testPoolRunsEveryChunkOnceAndCoversRanges() {
        let pool = ThreadPool(threads: 4)
        for chunks in [1, 2, 3, 4, 7, 16] {
            for _ in 0..<50 {
                let hits = HitCounter(count: chunks)
                pool.run(chunks: chunks, hits.add)
                XCTAssertEqual(hits.values, Array(repeating: 1, count: chunks), "\(chunks) chunks")
            }
        }
        for total in [0, 1, 3, 4, 5, 17, 64, 1000] {
            let covered = HitCounter(count: total)
            pool.parallelRanges(total, granule: 4) { range in range.forEach(covered.add) }
            XCTAssertEqual(covered.values, Array(repeating: 1, count: total), "total \(total)")
        }
    }
}

private final class HitCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [Int]
    init(count: Int) { counts = Array(repeating: 0, count: count) }
    func add(_ index: Int) { lock.withLock { counts[index] += 1 } }
    var values: [Int] { lock.withLock { counts } }
}
