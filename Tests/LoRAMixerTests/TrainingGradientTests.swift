import Foundation
import XCTest
@testable import LoRAMixer

/// Every backward kernel and a whole training step against central finite differences.
final class TrainingGradientTests: XCTestCase {
    private var generator = SplitMix64(seed: 7)

    private func random(_ count: Int, scale: Float = 1) -> [Float] { (0..<count).map { _ in scale * generator.nextNormal() } }

    /// Compares `analytic` with central differences of `loss` at `x`, element by element
    /// (every element, or `samples` of them), in f32 with step `eps`: relative error within
    /// `tolerance`, above an absolute floor `absolute` for the f32 rounding of the differences.
    private func checkGradient(_ what: String, x: [Float], analytic: [Float], samples: Int? = nil, eps: Float = 1e-2,
                               tolerance: Float = 1e-2, absolute: Float = 5e-4, loss: ([Float]) -> Double,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(x.count, analytic.count, what, file: file, line: line)
        let indices = samples.map { n in (0..<n).map { _ in Int(generator.next() % UInt64(x.count)) } } ?? Array(x.indices)
        for i in indices {
            var plus = x, minus = x
            plus[i] += eps
            minus[i] -= eps
            let numeric = Float((loss(plus) - loss(minus)) / Double(2 * eps))
            let error = max(0, abs(numeric - analytic[i]) - absolute) / max(abs(numeric), abs(analytic[i]), absolute)
            XCTAssertLessThanOrEqual(error, tolerance, "\(what)[\(i)]: analytic \(analytic[i]), numeric \(numeric)", file: file, line: line)
        }
        XCTAssertFalse(indices.isEmpty, file: file, line: line)
    }

    /// sum(r * y): a loss whose gradient with respect to y is r.
    private func weighted(_ y: [Float], _ r: [Float]) -> Double { zip(y, r).reduce(0) { $0 + Double($1.0 * $1.1) } }

    func testRMSNormBackward() {
        let (t, d) = (3, 8)
        let x = random(t * d), w = random(d), r = random(t * d)
        func forward(_ x: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: t * d)
            rmsNormForward(&y, x, weight: w, eps: 1e-5, tokens: t, dim: d)
            return y
        }
        var dx = [Float](repeating: 0, count: t * d)
        rmsNormBackward(&dx, r, x, weight: w, eps: 1e-5, tokens: t, dim: d)
        checkGradient("rmsnorm dx", x: x, analytic: dx, eps: 1e-3) { weighted(forward($0), r) }
    }

    func testSwiGLUBackward() {
        let n = 16
        let gate = random(n, scale: 2), up = random(n), r = random(n)
        var dGate = [Float](repeating: 0, count: n), dUp = dGate
        swigluBackward(dGate: &dGate, dUp: &dUp, r, gate: gate, up: up, count: n)
        func forward(_ g: [Float], _ u: [Float]) -> [Float] {
            var out = g
            swigluForward(&out, u, count: n)
            return out
        }
        checkGradient("swiglu dgate", x: gate, analytic: dGate, eps: 1e-3) { weighted(forward($0, up), r) }
        checkGradient("swiglu dup", x: up, analytic: dUp, eps: 1e-3) { weighted(forward(gate, $0), r) }
    }

    func testSelectiveScanBackward() {
        let (t, channels, n) = (5, 3, 4)
        let u = random(t * channels), delta = random(t * channels).map { 0.05 + 0.3 * abs($0) }
        let a = random(channels * n).map { -0.5 - abs($0) }, b = random(t * n), c = random(t * n), skip = random(channels)
        let r = random(t * channels)
        func forward(_ u: [Float], _ delta: [Float], _ b: [Float], _ c: [Float]) -> (y: [Float], states: [Float]) {
            var y = [Float](repeating: 0, count: t * channels), state = [Float](repeating: 0, count: channels * n)
            var states = [Float](repeating: 0, count: t * channels * n)
            selectiveScanForward(&y, u: u, delta: delta, a: a, b: b, c: c, skip: skip, state: &state, states: &states, tokens: t,
                                 channels: channels, stateSize: n, pool: nil)
            return (y, states)
        }
        var du = [Float](repeating: 0, count: t * channels), dDelta = du
        var db = [Float](repeating: 0, count: t * n), dc = db
        selectiveScanBackward(du: &du, dDelta: &dDelta, db: &db, dc: &dc, r, u: u, delta: delta, a: a, b: b, c: c, skip: skip,
                              states: forward(u, delta, b, c).states, tokens: t, channels: channels, stateSize: n)
        checkGradient("scan du", x: u, analytic: du, eps: 1e-3) { weighted(forward($0, delta, b, c).y, r) }
        checkGradient("scan ddelta", x: delta, analytic: dDelta, eps: 1e-3) { weighted(forward(u, $0, b, c).y, r) }
        checkGradient("scan db", x: b, analytic: db, eps: 1e-3) { weighted(forward(u, delta, $0, c).y, r) }
        checkGradient("scan dc", x: c, analytic: dc, eps: 1e-3) { weighted(forward(u, delta, b, $0).y, r) }
    }

    func testCausalConvBackward() {
        let (t, channels, kernel) = (6, 3, 4)
        let x = random(t * channels), w = random(channels * kernel), bias = random(channels), r = random(t * channels)
        func forward(_ x: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: t * channels)
            causalConvForward(&out, x, weight: w, bias: bias, history: nil, tokens: t, channels: channels, kernel: kernel, pool: nil)
            return out
        }
        var dx = [Float](repeating: 0, count: t * channels)
        causalConvBackward(&dx, r, weight: w, tokens: t, channels: channels, kernel: kernel)
        checkGradient("conv dx", x: x, analytic: dx, eps: 1e-3) { weighted(forward($0), r) }
    }

    func testSoftmaxAndCrossEntropyBackward() {
        let n = 6
        let z = random(n), r = random(n)
        var p = z
        softmaxInPlace(&p, n)
        var dz = [Float](repeating: 0, count: n)
        softmaxBackward(&dz, r, p, n)
        checkGradient("softmax dz", x: z, analytic: dz, eps: 1e-3) { z in
            var p = z
            softmaxInPlace(&p, n)
            return weighted(p, r)
        }
        let (rows, vocab) = (3, 5), targets: [Int32] = [4, 0, 2]
        let logits = random(rows * vocab, scale: 2)
        var gradient = logits
        _ = crossEntropyForwardBackward(&gradient, targets: targets, vocab: vocab, weight: 1 / 3)
        checkGradient("cross-entropy dlogits", x: logits, analytic: gradient, eps: 1e-3) { logits in
            var copy = logits
            return crossEntropyForwardBackward(&copy, targets: targets, vocab: vocab, weight: 1 / 3)
        }
    }

    func testRoPEBackward() {
        let (t, heads, d) = (4, 2, 8)
        let frequencies = (0..<(d / 2)).map { pow(10_000, -2 * Double($0) / Double(d)) }
        let x = random(t * heads * d), r = random(t * heads * d)
        let positions = [3, 0, 7, 1]
        var dx = r
        ropeBackward(&dx, tokens: t, heads: heads, headDim: d, positions: { positions[$0] }, inverseFrequencies: frequencies)
        checkGradient("rope dx", x: x, analytic: dx, eps: 1e-3) { x in
            var y = x
            ropeForward(&y, tokens: t, heads: heads, headDim: d, positions: { positions[$0] }, inverseFrequencies: frequencies)
            return weighted(y, r)
        }
    }

    func testSequenceAttentionBackwardWithGroupedHeadsAndWindow() {
        for window in [nil, 2] as [Int?] {
            let (t, heads, kvHeads, d) = (5, 4, 2, 4)
            let q = random(t * heads * d), k = random(t * kvHeads * d), v = random(t * kvHeads * d), r = random(t * heads * d)
            func forward(_ q: [Float], _ k: [Float], _ v: [Float]) -> [Float] {
                var out = [Float](repeating: 0, count: t * heads * d), probs = [Float](repeating: 0, count: heads * t * t)
                sequenceAttentionForward(&out, probs: &probs, q: q, k: k, v: v, tokens: t, heads: heads, kvHeads: kvHeads,
                                         headDim: d, window: window)
                return out
            }
            var out = [Float](repeating: 0, count: t * heads * d), probs = [Float](repeating: 0, count: heads * t * t)
            sequenceAttentionForward(&out, probs: &probs, q: q, k: k, v: v, tokens: t, heads: heads, kvHeads: kvHeads,
                                     headDim: d, window: window)
            var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
            sequenceAttentionBackward(dq: &dq, dk: &dk, dv: &dv, r, probs: probs, q: q, k: k, v: v, tokens: t, heads: heads,
                                      kvHeads: kvHeads, headDim: d, window: window)
            let label = "attention window \(window.map(String.init) ?? "none")"
            checkGradient("\(label) dq", x: q, analytic: dq, eps: 1e-3) { weighted(forward($0, k, v), r) }
            checkGradient("\(label) dk", x: k, analytic: dk, eps: 1e-3) { weighted(forward(q, $0, v), r) }
            checkGradient("\(label) dv", x: v, analytic: dv, eps: 1e-3) { weighted(forward(q, k, $0), r) }
        }
    }

    /// The fast backward kernels against their naive references, on every instruction set this
    /// CPU has, and the references against finite differences.
    func testLinearBackwardKernelsMatchReferences() throws {
        let (t, inFeatures, outFeatures) = (5, 37, 11)
        let values = random(outFeatures * inFeatures), dy = random(t * outFeatures), x = random(t * inFeatures)
        for dtype in [DType.f32, .bf16, .f16] {
            let weight = try storedMatrix(values, rows: outFeatures, cols: inFeatures, dtype: dtype)
            var expected = [Float](repeating: 0.5, count: t * inFeatures)
            linearBackwardInputReference(&expected, dy, weight, tokens: t)
            for isa in KernelISA.allCases where isa.rawValue <= KernelISA.avx512.rawValue {
                let previous = setMaxKernelISA(isa)
                defer { setMaxKernelISA(previous) }
                var actual = [Float](repeating: 0.5, count: t * inFeatures)
                linearBackwardInput(&actual, dy, weight, tokens: t)
                assertClose(actual, expected, tolerance: 1e-4, "backward input \(dtype) \(isa)")
                var dw = [Float](repeating: 0.25, count: outFeatures * inFeatures), reference = dw
                linearBackwardWeight(&dw, dy, x, tokens: t, inFeatures: inFeatures, outFeatures: outFeatures)
                linearBackwardWeightReference(&reference, dy, x, tokens: t, inFeatures: inFeatures, outFeatures: outFeatures)
                assertClose(dw, reference, tolerance: 1e-4, "backward weight \(isa)")
            }
        }
        let weight = try WeightMatrix(rows: outFeatures, cols: inFeatures, values: values)
        var dx = [Float](repeating: 0, count: t * inFeatures)
        linearBackwardInputReference(&dx, dy, weight, tokens: t)
        checkGradient("linear dx", x: x, analytic: dx, eps: 1e-2) { x in
            var y = [Float](repeating: 0, count: t * outFeatures)
            linearForwardReference(&y, x, weight, bias: nil, tokens: t)
            return weighted(y, dy)
        }
        var dw = [Float](repeating: 0, count: outFeatures * inFeatures)
        linearBackwardWeightReference(&dw, dy, x, tokens: t, inFeatures: inFeatures, outFeatures: outFeatures)
        checkGradient("linear dW", x: values, analytic: dw, samples: 40, eps: 1e-2) { w in
            var y = [Float](repeating: 0, count: t * outFeatures)
            linearForwardReference(&y, x, try! WeightMatrix(rows: outFeatures, cols: inFeatures, values: w), bias: nil, tokens: t)
            return weighted(y, dy)
        }
    }

    /// A whole step (every layer, gates, router, RSL, preserve) in each routing mode: the
    /// gradients of sampled router and LoRA elements against finite differences of the loss.
    func testWholeStepGradientsMatchFiniteDifferences() throws {
        try checkWholeStep(fixture: "llama_f32")
    }

    /// The same through Mamba blocks (conv, selective scan, gate; experts on in/x/dt/out_proj),
    /// and FalconMamba's extra norms of dt, B and C.
    func testMambaWholeStepGradientsMatchFiniteDifferences() throws {
        try checkWholeStep(fixture: "mamba_f32")
        try checkWholeStep(fixture: "falcon_mamba_f32")
    }

    private func checkWholeStep(fixture: String) throws {
        let cases: [(TrainingOptions.Routing, String)] = [(.topk, "router_context.safetensors"), (.soft, "router.safetensors"),
                                                           (.label, "router.safetensors")]
        for (routing, routerFile) in cases {
            let mixer = try Fixtures.mixer(fixture, router: routerFile)
            var options = TrainingOptions()
            options.regime = .joint
            options.routing = routing
            options.topK = 2
            options.alpha = 0.1
            options.lambda = 0.05
            options.beta = 0.5
            options.sensitiveExperts = ["e1"]
            let examples = [
                TrainingExample(tokens: (0..<9).map { Int32(3 + $0 * 7) }, targets: (0..<9).map { $0 >= 5 }, task: "e0"),
                TrainingExample(tokens: (0..<6).map { Int32(100 - $0 * 5) }, targets: (0..<6).map { $0 >= 2 }, task: "e2"),
            ]
            let trainer = try Trainer(mixer: mixer, options: options, examples: examples, output: nil)
            // Move the sensitive expert off its starting point so L_preserve has a gradient.
            for parameter in trainer.mixture.parameters where parameter.name.hasPrefix("experts.e1.") {
                for i in 0..<parameter.count { parameter.values[i] += 0.01 * generator.nextNormal() }
            }
            let (_, _, gradients) = try trainer.gradients(for: examples, routing: routing)
            for (index, parameter) in trainer.mixture.parameters.enumerated() where index % 3 == 0 || parameter.name.contains("router") {
                guard let gradient = gradients[index] else { continue }
                let original = parameter.values.array
                checkGradient("\(fixture) \(routing) \(parameter.name)", x: original, analytic: gradient.array, samples: 3, eps: 1e-3,
                              tolerance: 2e-2, absolute: 5e-4) { values in
                    parameter.values.pointer.update(from: values, count: values.count)
                    defer { parameter.values.pointer.update(from: original, count: original.count) }
                    return (try? trainer.gradients(for: examples, routing: routing).0.total) ?? .nan
                }
            }
        }
    }
}
