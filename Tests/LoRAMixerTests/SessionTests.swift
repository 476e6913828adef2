import XCTest
@testable import LoRAMixer

final class SessionTests: XCTestCase {
    private func session(_ fixture: String = "llama_f32") throws -> Session {
        try Fixtures.mixer(fixture).makeSession()
    }

    func testGreedyGenerationContinuesTheArgmaxChain() throws {
        let a = try session()
        let prompt = try Array(Fixtures.tokens("llama_f32").prefix(4))
        let generated = try a.generate(prompt: prompt, options: .init(maxTokens: 6))
        XCTAssertEqual(generated.count, 6)
        XCTAssertEqual(a.position, prompt.count + 6, "every returned token is evaluated into the session")
        // The same chain by hand: argmax of the last logits, fed back one token at a time.
        let b = try session()
        var logits = try b.evaluate(prompt, logits: .last)
        for expected in generated {
            let argmax = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
            XCTAssertEqual(argmax, expected)
            logits = try b.evaluate([argmax], logits: .last)
        }
        XCTAssertEqual(a.trace?.tokens, b.trace?.tokens)
        XCTAssertEqual(a.trace?.gates, b.trace?.gates)
    }

    func testStopTokenCallbackAndContinuation() throws {
        let prompt = try Array(Fixtures.tokens("llama_f32").prefix(4))
        let free = try session().generate(prompt: prompt, options: .init(maxTokens: 8))
        let stopped = try session().generate(prompt: prompt, options: .init(maxTokens: 8, stopTokens: [free[3]]))
        XCTAssertEqual(stopped, Array(free.prefix(upTo: free.firstIndex(of: free[3])!)), "stops before the stop token")
        var seen: [Int32] = []
        let early = try session().generate(prompt: prompt, options: .init(maxTokens: 8)) { seen.append($0); return seen.count < 2 }
        XCTAssertEqual(early, Array(free.prefix(2)))
        XCTAssertEqual(seen, early)
        // Continuing with an empty prompt picks up where generation stopped.
        let s = try session()
        let first = try s.generate(prompt: prompt, options: .init(maxTokens: 3))
        let rest = try s.generate(prompt: [], options: .init(maxTokens: 5))
        XCTAssertEqual(first + rest, free)
    }

    func testSamplingIsSeededAndRespectsTopK() throws {
        let prompt = try Array(Fixtures.tokens("llama_f32").prefix(4))
        let options = Session.GenerationOptions(maxTokens: 10, sampling: SamplingOptions(temperature: 1.5, seed: 42))
        let a = try session().generate(prompt: prompt, options: options)
        let b = try session().generate(prompt: prompt, options: options)
        XCTAssertEqual(a, b)
        var other = options
        other.sampling.seed = 43
        XCTAssertNotEqual(try session().generate(prompt: prompt, options: other), a)
        var topOne = options
        topOne.sampling.topK = 1
        XCTAssertEqual(try session().generate(prompt: prompt, options: topOne),
                       try session().generate(prompt: prompt, options: .init(maxTokens: 10)), "top-k 1 is greedy")
        var tinyP = options
        tinyP.sampling.topP = 1e-6
        XCTAssertEqual(try session().generate(prompt: prompt, options: tinyP),
                       try session().generate(prompt: prompt, options: .init(maxTokens: 10)), "top-p near 0 is greedy")
    }

    func testGenerationStopsWhenTheContextIsFull() throws {
        let s = try Fixtures.mixer("llama_f32").makeSession(contextLength: 6)
        let generated = try s.generate(prompt: [1, 2, 3, 4], options: .init(maxTokens: 10))
        XCTAssertEqual(generated.count, 3, "two fit after the prompt; the third is returned but cannot be evaluated")
        XCTAssertEqual(s.position, 6)
    }

    func testResetForgetsEverything() throws {
        let s = try Fixtures.mixer("llama_f32", router: "router_context.safetensors").makeSession()
        let tokens = try Fixtures.tokens("llama_f32")
        let first = try s.evaluate(tokens, logits: .all)
        s.reset()
        XCTAssertEqual(s.position, 0)
        XCTAssertEqual(s.trace?.tokenCount, 0)
        XCTAssertEqual(try s.evaluate(tokens, logits: .all), first, "context sums are reset too")
    }

    func testRoutingNoneIsTheBaseModel() throws {
        let s = try session()
        try s.setRouting(.none)
        let expected = try Fixtures.expected("llama_f32").tensor("base_logits").floats()
        assertClose(try s.evaluate(Fixtures.tokens("llama_f32"), logits: .all), expected, tolerance: 1e-4, "none")
        XCTAssertTrue(s.trace!.expertIDs.allSatisfy { $0 == -1 })
    }

    func testExpertFromMemoryEqualsTheSamePEFTFolder() throws {
        let model = try LanguageModel(directory: Fixtures.path("llama_f32"))
        let peft = try LoRAExpert(peftDirectory: Fixtures.path("llama_f32", "adapters", "e0"), name: "e0", config: model.config)
        let tensors = peft.targetLayers.flatMap { layer in
            peft.targetModules.compactMap { module in
                peft.weights(layer: layer, module: module).map { LoRAExpert.MemoryTensor(layer: layer, module: module, a: $0.a, b: $0.b) }
            }
        }
        let memory = try LoRAExpert(name: "mem", alpha: 8, useRSLoRA: false, tensors: tensors, config: model.config)
        let mixer = Mixer(model: model)
        try mixer.add(memory)
        let s = try mixer.makeSession()
        try s.setRouting(.fixed([1]))
        assertClose(try s.evaluate(Fixtures.tokens("llama_f32"), logits: .all),
                    try Fixtures.expected("llama_f32").tensor("peft_e0_logits").floats(), tolerance: 1e-4, "memory e0")
    }

    func testMixerSnapshotIsolatesSessions() throws {
        let mixer = try Fixtures.mixer("llama_f32", router: nil)
        let before = try mixer.makeSession()
        try mixer.addPEFT(name: "late", directory: Fixtures.path("llama_f32", "adapters", "e0"))
        XCTAssertEqual(before.experts.count, 3)
        XCTAssertEqual(try mixer.makeSession().experts.count, 4)
    }

    func testMappedAndCopiedLoadingAgree() throws {
        let tokens = try Fixtures.tokens("llama_bf16")
        let mapped = try Mixer(model: LanguageModel(directory: Fixtures.path("llama_bf16"), mode: .mapped)).makeSession()
        let copied = try Mixer(model: LanguageModel(directory: Fixtures.path("llama_bf16"), mode: .copied)).makeSession()
        XCTAssertEqual(try mapped.evaluate(tokens, logits: .all), try copied.evaluate(tokens, logits: .all))
    }

    /// An expert that fails mid-pass fails the evaluation and leaves the session as it was.
    func testFailingExpertLeavesTheSessionUnchanged() throws {
        final class Failing: Expert, @unchecked Sendable {
            let name = "failing"
            var armed = false
            func adapts(layer: Int, module: ProjectionModule) -> Bool { layer == 1 && module == .down }
            func delta(layer: Int, module: ProjectionModule, rows: UnsafePointer<Float>, count: Int,
                       into delta: UnsafeMutablePointer<Float>) throws {
                if armed { throw LoRAMixerError(.plugin, "expert failed on purpose") }
            }
        }
        let failing = Failing()
        let mixer = Mixer(model: try LanguageModel(directory: Fixtures.path("llama_f32")))
        try mixer.add(failing)
        let session = try mixer.makeSession()
        try session.setRouting(.uniform)
        let tokens = try Fixtures.tokens("llama_f32")
        _ = try session.evaluate(Array(tokens.prefix(3)), logits: .none)
        failing.armed = true
        XCTAssertThrowsError(try session.evaluate(Array(tokens.dropFirst(3)), logits: .all)) { error in
            XCTAssertEqual((error as? LoRAMixerError)?.kind, .plugin)
        }
        XCTAssertEqual(session.position, 3)
        XCTAssertEqual(session.trace?.tokenCount, 3)
        failing.armed = false
        let resumed = try session.evaluate(Array(tokens.dropFirst(3)), logits: .all)
        let expected = try Fixtures.expected("llama_f32").tensor("base_logits").floats()
        assertClose(resumed, Array(expected[(3 * 128)...]), tolerance: 1e-4, "after a failed pass")
    }

    /// A generation that fails part way leaves the session exactly as before the call.
    func testFailedGenerationRollsBack() throws {
        final class FailsLater: Expert, @unchecked Sendable {
            let name = "fails-later"
            var calls = 0
            func adapts(layer: Int, module: ProjectionModule) -> Bool { layer == 0 && module == .q }
            func delta(layer: Int, module: ProjectionModule, rows: UnsafePointer<Float>, count: Int,
                       into delta: UnsafeMutablePointer<Float>) throws {
                calls += 1
                if calls == 5 { throw LoRAMixerError(.plugin, "fifth call fails") }
            }
        }
        let expert = FailsLater()
        let mixer = Mixer(model: try LanguageModel(directory: Fixtures.path("llama_f32")))
        try mixer.add(expert)
        let session = try mixer.makeSession()
        try session.setRouting(.uniform)
        _ = try session.evaluate([1, 2], logits: .last)
        let before = (session.position, session.trace?.tokens)
        XCTAssertThrowsError(try session.generate(prompt: [3], options: .init(maxTokens: 6)))
        XCTAssertEqual(session.position, before.0)
        XCTAssertEqual(session.trace?.tokens, before.1)
        let resumed = try session.generate(prompt: [3], options: .init(maxTokens: 3))
        let fresh = try Fixtures.mixer("llama_f32", router: nil).makeSession()
        XCTAssertEqual(resumed, try fresh.generate(prompt: [1, 2, 3], options: .init(maxTokens: 3)),
                       "the expert adds nothing, so the continuation equals the base model's")
    }

    func testBorrowedWeightsAreReleasedOnceWhenTheLastUserGoes() throws {
        let values: [Float] = (0..<(64 * 4)).map { Float($0) / 256 }
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: values.count)
        pointer.initialize(from: values, count: values.count)
        let address = Int(bitPattern: pointer)
        let released = ManagedCounter()
        do {
            let matrix = try WeightMatrix(rows: 4, cols: 64, dtype: .f32, borrowing: pointer) {
                released.increment()
                UnsafeMutablePointer<Float>(bitPattern: address)?.deallocate()
            }
            let copy = matrix
            XCTAssertEqual(copy.floats(), values, "used in place")
            XCTAssertEqual(released.value, 0)
        }
        XCTAssertEqual(released.value, 1)
    }
}

private final class ManagedCounter: @unchecked Sendable {
    private(set) var value = 0
    func increment() { value += 1 }
}
