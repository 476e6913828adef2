import Foundation
import XCTest
@testable import LoRAMixer

/// The C selective scan and causal convolution against the recurrences written out naively, and
/// their state carried across calls (prefill then decode) against one call over everything.
final class StateSpaceKernelTests: XCTestCase {
    private var generator = SplitMix64(seed: 11)
    private func random(_ count: Int) -> [Float] { (0..<count).map { _ in generator.nextNormal() } }

    /// Every scan path this CPU has (AVX2 with its polynomial exp for state sizes that are multiples
    /// of 8; the portable loop otherwise) against the recurrence in Double.
    func testSelectiveScanMatchesNaiveRecurrenceAcrossPathsThreadsAndCalls() {
        let ceiling: KernelISA = {
            let previous = setMaxKernelISA(.avx512)
            defer { setMaxKernelISA(previous) }
            return kernelISA
        }()
        defer { setMaxKernelISA(.avx512) }
        for isa in KernelISA.allCases where isa.rawValue <= ceiling.rawValue {
            setMaxKernelISA(isa)
            for n in [5, 16] { checkScan(stateSize: n, "\(isa) n \(n)") }
        }
    }

    private func checkScan(stateSize n: Int, _ what: String) {
        let (t, channels) = (7, 37)
        let u = random(t * channels), delta = random(t * channels).map { 0.02 + 0.4 * abs($0) }
        // Decays from exp(-1e-3) to exp(-90) (below the polynomial's clamp).
        let a = random(channels * n).map { -0.01 - 30 * abs($0) * abs($0) }, b = random(t * n), c = random(t * n)
        let skip = random(channels)
        // naive: s_t = exp(delta_t a) s_{t-1} + delta_t b_t u_t; y_t = s_t . c_t + D u_t (in Double)
        var expected = [Float](repeating: 0, count: t * channels)
        for ch in 0..<channels {
            var s = [Double](repeating: 0, count: n)
            for step in 0..<t {
                let dt = Double(delta[step * channels + ch]), x = Double(u[step * channels + ch])
                var y = Double(skip[ch]) * x
                for j in 0..<n {
                    s[j] = Foundation.exp(dt * Double(a[ch * n + j])) * s[j] + dt * Double(b[step * n + j]) * x
                    y += s[j] * Double(c[step * n + j])
                }
                expected[step * channels + ch] = Float(y)
            }
        }
        let pool = ThreadPool(threads: 2)
        var whole = [Float](repeating: 0, count: t * channels), state = [Float](repeating: 0, count: channels * n)
        selectiveScanForward(&whole, u: u, delta: delta, a: a, b: b, c: c, skip: skip, state: &state, states: nil, tokens: t,
                             channels: channels, stateSize: n, pool: pool)
        assertClose(whole, expected, tolerance: 1e-5, "\(what): one call, 2 threads")

        // The first 4 tokens, then the rest one at a time from the carried state.
        var pieces: [Float] = [], carried = [Float](repeating: 0, count: channels * n)
        for range in [0..<4, 4..<5, 5..<6, 6..<7] {
            var y = [Float](repeating: 0, count: range.count * channels)
            selectiveScanForward(&y, u: Array(u[(range.lowerBound * channels)..<(range.upperBound * channels)]),
                                 delta: Array(delta[(range.lowerBound * channels)..<(range.upperBound * channels)]), a: a,
                                 b: Array(b[(range.lowerBound * n)..<(range.upperBound * n)]),
                                 c: Array(c[(range.lowerBound * n)..<(range.upperBound * n)]), skip: skip, state: &carried,
                                 states: nil, tokens: range.count, channels: channels, stateSize: n, pool: nil)
            pieces += y
        }
        assertClose(pieces, whole, tolerance: 1e-6, "\(what): carried state")
        assertClose(carried, state, tolerance: 1e-6, "\(what): final state")
    }

    func testCausalConvMatchesNaiveAndCarriesHistory() {
        let (t, channels, kernel) = (6, 21, 4)
        let x = random(t * channels), w = random(channels * kernel), bias = random(channels)
        var expected = [Float](repeating: 0, count: t * channels)
        for step in 0..<t {
            for ch in 0..<channels {
                var sum = bias[ch]
                for k in 0..<kernel where step - (kernel - 1) + k >= 0 {
                    sum += w[ch * kernel + k] * x[(step - (kernel - 1) + k) * channels + ch]
                }
                expected[step * channels + ch] = sum
            }
        }
        var whole = [Float](repeating: 0, count: t * channels)
        causalConvForward(&whole, x, weight: w, bias: bias, history: nil, tokens: t, channels: channels, kernel: kernel,
                          pool: ThreadPool(threads: 2))
        assertClose(whole, expected, tolerance: 1e-5, "one call")

        // 2 tokens (fewer than K - 1), then 1, then 3, each continuing from the history.
        var history = [Float](repeating: 0, count: channels * (kernel - 1)), pieces: [Float] = []
        for range in [0..<2, 2..<3, 3..<6] {
            var out = [Float](repeating: 0, count: range.count * channels)
            causalConvForward(&out, Array(x[(range.lowerBound * channels)..<(range.upperBound * channels)]), weight: w, bias: bias,
                              history: &history, tokens: range.count, channels: channels, kernel: kernel, pool: nil)
            pieces += out
        }
        assertClose(pieces, expected, tolerance: 1e-5, "carried history")
    }
}
