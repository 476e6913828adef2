import XCTest
@testable import LoRAMixer

/// Logits of every position against transformers / PEFT / the script's own torch mixture.
final class FixtureParityTests: XCTestCase {
    private func logits(_ fixture: String, mixer: Mixer, configure: (Session) throws -> Void) throws -> [Float] {
        let session = try mixer.makeSession()
        try configure(session)
        return try session.evaluate(Fixtures.tokens(fixture), logits: .all)
    }

    func testBaseModelMatchesTransformers() throws {
        for fixture in Fixtures.cases {
            let mixer = Mixer(model: try LanguageModel(directory: Fixtures.path(fixture)))
            let actual = try logits(fixture, mixer: mixer) { _ in }
            assertClose(actual, try Fixtures.expected(fixture).tensor("base_logits").floats(),
                        tolerance: Fixtures.tolerance(fixture), "\(fixture) base")
        }
    }

    func testShardedModelMatchesSingleFile() throws {
        let mixer = Mixer(model: try LanguageModel(directory: Fixtures.path("llama_sharded")))
        let actual = try logits("llama_f32", mixer: mixer) { _ in }
        assertClose(actual, try Fixtures.expected("llama_f32").tensor("base_logits").floats(), tolerance: 1e-4, "sharded")
    }

    func testEachAdapterAloneMatchesPeftModel() throws {
        for fixture in Fixtures.cases {
            let mixer = try Fixtures.mixer(fixture)
            for (index, name) in Fixtures.expertNames.enumerated() {
                let actual = try logits(fixture, mixer: mixer) { session in
                    var weights: [Float] = [0, 0, 0]
                    weights[index] = 1
                    try session.setRouting(.fixed(weights))
                }
                assertClose(actual, try Fixtures.expected(fixture).tensor("peft_\(name)_logits").floats(),
                            tolerance: Fixtures.tolerance(fixture), "\(fixture) peft \(name)")
            }
        }
    }

    func testRoutingModesMatchTorchMixture() throws {
        for fixture in Fixtures.cases {
            let expected = try Fixtures.expected(fixture)
            let mixer = try Fixtures.mixer(fixture)
            let tolerance = Fixtures.tolerance(fixture)
            let fixed = try expected.tensor("fixed_weights").floats()
            let cases: [(String, (Session) throws -> Void)] = [
                ("learned_logits", { _ in }),
                ("soft_logits", { try $0.setRouting(.soft) }),
                ("uniform_logits", { try $0.setRouting(.uniform) }),
                ("fixed_logits", { try $0.setRouting(.fixed(fixed)) }),
                ("learned_topk1_logits", { try $0.setTopK(1) }),
                ("learned_temp2_logits", { try $0.setTemperature(2) }),
            ]
            for (name, configure) in cases {
                let actual = try logits(fixture, mixer: mixer, configure: configure)
                assertClose(actual, try expected.tensor(name).floats(), tolerance: tolerance, "\(fixture) \(name)")
            }
        }
    }

    func testContextRouterWithReorderedExperts() throws {
        for fixture in Fixtures.cases {
            let expected = try Fixtures.expected(fixture)
            let mixer = try Fixtures.mixer(fixture, router: "router_context.safetensors")
            let actual = try logits(fixture, mixer: mixer) { _ in }
            assertClose(actual, try expected.tensor("context_logits").floats(), tolerance: Fixtures.tolerance(fixture),
                        "\(fixture) context")
        }
    }

    func testTraceMatchesTorchSelection() throws {
        for (fixture, prefix, router) in [("llama_f32", "learned", "router.safetensors"),
                                          ("qwen2_f32", "learned", "router.safetensors"),
                                          ("mistral_f32", "context", "router_context.safetensors"),
                                          ("mamba_f32", "learned", "router.safetensors"),
                                          ("falcon_mamba_f32", "context", "router_context.safetensors")] {
            let expected = try Fixtures.expected(fixture)
            let ids = try expected.tensor("\(prefix)_ids").int32s()
            let gates = try expected.tensor("\(prefix)_gates").floats()
            let session = try Fixtures.mixer(fixture, router: router).makeSession()
            let tokens = try Fixtures.tokens(fixture)
            _ = try session.evaluate(tokens, logits: .none)
            let trace = try XCTUnwrap(session.trace)
            let layers = trace.layers
            XCTAssertEqual(trace.tokenCount, tokens.count)
            for t in 0..<tokens.count {
                for l in 0..<layers {
                    let entry = trace.entry(token: t, layer: l)
                    XCTAssertEqual(entry.map { Int32($0.expert) }, [ids[(t * layers + l) * 2], ids[(t * layers + l) * 2 + 1]],
                                   "\(fixture) token \(t) layer \(l)")
                    assertClose(entry.map(\.gate), Array(gates[((t * layers + l) * 2)..<((t * layers + l) * 2 + 2)]),
                                tolerance: 1e-5, "\(fixture) gates token \(t) layer \(l)")
                }
            }
        }
    }

    /// Prefill of a prefix then one token at a time must give the same logits as one prefill
    /// (for Mamba: the convolution history and SSM state carried between calls).
    func testIncrementalDecodeMatchesPrefill() throws {
        for fixture in ["llama_f32", "mistral_f32", "qwen2_f32", "mamba_f32", "falcon_mamba_f32"] {
            let expected = try Fixtures.expected(fixture)
            for (router, name) in [("router.safetensors", "learned_logits"), ("router_context.safetensors", "context_logits")] {
                let session = try Fixtures.mixer(fixture, router: router).makeSession()
                let tokens = try Fixtures.tokens(fixture)
                var actual = try session.evaluate(Array(tokens.prefix(5)), logits: .all)
                for token in tokens.dropFirst(5) {
                    actual += try session.evaluate([token], logits: .last)
                }
                assertClose(actual, try expected.tensor(name).floats(), tolerance: 1e-4, "\(fixture) incremental \(name)")
            }
        }
    }
}
