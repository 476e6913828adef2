import Foundation
import XCTest
@testable import LoRAMixer

/// Training runs end to end: determinism, checkpoints and resume, cancellation, written files,
/// the schedule, and bad input.
final class TrainingTests: XCTestCase {
    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "lmx-train-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Two tasks the fixture model (vocab 128) can tell apart: rising and falling runs of ids.
    private func examples(_ count: Int, seed: UInt64 = 3) -> [TrainingExample] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { i in
            let start = Int32(10 + generator.next() % 40)
            let rising = i % 2 == 0
            let tokens = (0..<8).map { rising ? start + Int32($0) : start + 40 - Int32($0) }
            return TrainingExample(tokens: tokens, targets: (0..<8).map { $0 >= 5 }, task: rising ? "e0" : "e2")
        }
    }

    private func options(_ regime: TrainingOptions.Regime, _ routing: TrainingOptions.Routing) -> TrainingOptions {
        var options = TrainingOptions()
        options.regime = regime
        options.routing = routing
        options.batchSize = 4
        options.steps = 6
        options.learningRate = 1e-2
        options.warmupSteps = 2
        options.seed = 11
        return options
    }

    private func values(_ trainer: Trainer) -> [[Float]] { trainer.mixture.parameters.map(\.values.array) }

    func testSameSeedSameResultAndTrainingLowersTheLoss() throws {
        let data = examples(16)
        var runs: [[[Float]]] = []
        for threads in [1, 2] {
            var options = options(.joint, .topk)
            options.threads = threads
            options.steps = 12
            let trainer = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: options, examples: data, output: nil)
            let report = try trainer.run()
            runs.append(values(trainer))
            XCTAssertEqual(report.steps.count, 12)
            let first = report.steps.prefix(3).map(\.crossEntropy).reduce(0, +), last = report.steps.suffix(3).map(\.crossEntropy).reduce(0, +)
            XCTAssertLessThan(last, first * 0.9, "training should lower the cross-entropy: first steps \(first), last \(last)")
        }
        XCTAssertEqual(runs[0], runs[1], "the same seed must give bit-identical parameters, whatever the thread count")
    }

    func testCancelCheckpointsAndResumeContinuesTheSameRun() throws {
        let data = examples(12)
        let options = self.options(.joint, .topk)
        let uninterrupted = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: options, examples: data, output: nil)
        _ = try uninterrupted.run()

        let output = try temporaryDirectory()
        let first = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: options, examples: data, output: output)
        assertThrows(.cancelled, containing: ["after step 3 of 6", "checkpoint saved"]) {
            _ = try first.run { $0.step < 3 }
        }
        let resumed = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: options, examples: data, output: output, resume: true)
        XCTAssertEqual(resumed.completedSteps, 3)
        let report = try resumed.run()
        XCTAssertEqual(report.resumedFromStep, 3)
        XCTAssertEqual(report.steps.map(\.step), [1, 2, 3, 4, 5, 6], "the report keeps the steps before the resume")
        XCTAssertEqual(values(resumed), values(uninterrupted), "resuming must continue the same run exactly")

        var other = options
        other.learningRate = 2e-2
        assertThrows(.state, containing: ["different run"]) {
            _ = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: other, examples: data, output: output, resume: true)
        }
    }

    func testWrittenRouterAndPEFTFoldersLoadAndGiveTheTrainedLogits() throws {
        let output = try temporaryDirectory()
        var options = self.options(.joint, .topk)
        options.routerInput = .context
        let mixer = try Fixtures.mixer("llama_f32", router: "router_context.safetensors")
        let report = try mixer.train(options: options, dataPath: try writeData(examples(8)), output: output)
        XCTAssertEqual(Set(report.files), ["router.safetensors", "experts/e0", "experts/e1", "experts/e2",
                                           "checkpoint/state.safetensors", "report.json"])
        let reloaded = Mixer(model: mixer.model)
        for name in Fixtures.expertNames {
            try reloaded.addPEFT(name: name, directory: output + "/experts/\(name)")
        }
        try reloaded.loadRouter(path: output + "/router.safetensors")
        XCTAssertEqual(reloaded.router?.input, .context)
        let tokens = examples(1)[0].tokens
        let trained = try mixer.makeSession().evaluate(tokens, logits: .all)
        let loaded = try reloaded.makeSession().evaluate(tokens, logits: .all)
        assertClose(loaded, trained, tolerance: 1e-6, "logits of the written files vs the trained mixer")
        let original = try Fixtures.mixer("llama_f32", router: "router_context.safetensors").makeSession().evaluate(tokens, logits: .all)
        XCTAssertGreaterThan(zip(original, trained).map { abs($0 - $1) }.max() ?? 0, 1e-3, "training changed nothing")
        let json = try JSONParser.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: output + "/report.json"))), context: "report")
        XCTAssertEqual(json.object?["steps"]?.array?.count, 6)
        XCTAssertEqual(json.object?["completed_steps"]?.int, 6)
    }

    func testRouterRegimeFreezesExpertsAndLabelRoutingTrainsEachExpertOnItsTask() throws {
        let data = examples(8)
        let routerRun = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: options(.router, .soft), examples: data, output: nil)
        let before = routerRun.mixture.parameters.filter { $0.name.hasPrefix("experts.") }.map(\.values.array)
        _ = try routerRun.run()
        XCTAssertEqual(routerRun.mixture.parameters.filter { $0.name.hasPrefix("experts.") }.map(\.values.array), before)
        XCTAssertTrue(routerRun.mixture.parameters.filter { $0.name.hasPrefix("router.") }.allSatisfy(\.trainable))

        // Label routing, no router: only e0 and e2 have examples, so e1 never moves.
        let mixer = try Fixtures.mixer("llama_f32", router: nil)
        let labelRun = try Trainer(mixer: mixer, options: options(.joint, .label), examples: data, evaluation: data, output: nil)
        XCTAssertNil(labelRun.mixture.router)
        let start = labelRun.mixture.parameters.map(\.values.array)
        let report = try labelRun.run()
        for (parameter, initial) in zip(labelRun.mixture.parameters, start) {
            let moved = parameter.values.array != initial
            XCTAssertEqual(moved, !parameter.name.hasPrefix("experts.e1."), parameter.name)
        }
        XCTAssertEqual(report.evaluation.map(\.task), ["e0", "e2"])
        XCTAssertEqual(report.evaluation.map(\.examples), [4, 4])
    }

    func testSoftToTopKScheduleAndLearningRateSchedule() throws {
        var options = options(.router, .topk)
        options.softSteps = 2
        options.minLearningRate = 1e-3
        let trainer = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: options, examples: examples(8), output: nil)
        let report = try trainer.run()
        XCTAssertEqual(report.steps.map(\.routing), [.soft, .soft, .topk, .topk, .topk, .topk])
        let rates = report.steps.map(\.learningRate)
        XCTAssertEqual(rates[0], 5e-3, accuracy: 1e-9)
        XCTAssertEqual(rates[1], 1e-2, accuracy: 1e-9)
        XCTAssertEqual(rates[5], 1e-3 + 0.5 * 9e-3 * (1 + Float(cos(Double.pi * 3 / 4))), accuracy: 1e-7)
        XCTAssertTrue(report.steps.allSatisfy { abs($0.expertLoad.reduce(0, +) - 1) < 1e-5 }, "loads are shares of assignments")
        XCTAssertEqual(report.steps[0].layerEntropy.count, 2)
    }

    func testBadInputIsRefusedWithReasons() throws {
        let data = examples(4)
        assertThrows(.invalidArgument, containing: ["label routing needs a \"task\"", "got none"]) {
            _ = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: self.options(.joint, .label),
                            examples: [TrainingExample(tokens: [1, 2, 3], targets: [false, true, true], task: nil)], output: nil)
        }
        assertThrows(.notFound, containing: ["sensitive expert 'nobody'"]) {
            var options = self.options(.joint, .topk)
            options.sensitiveExperts = ["nobody"]
            _ = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: options, examples: data, output: nil)
        }
        assertThrows(.invalidArgument, containing: ["beta (L_preserve) applies to experts"]) {
            var options = self.options(.router, .topk)
            options.beta = 1
            _ = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: options, examples: data, output: nil)
        }
        assertThrows(.invalidArgument, containing: ["learning rate"]) {
            var options = self.options(.router, .topk)
            options.learningRate = .nan
            _ = try Trainer(mixer: Fixtures.mixer("llama_f32"), options: options, examples: data, output: nil)
        }
        let mixer = try Fixtures.mixer("llama_f32", router: nil)
        try mixer.add(ZeroExpert())
        assertThrows(.state, containing: ["'custom' is a custom expert"]) {
            _ = try Trainer(mixer: mixer, options: self.options(.joint, .label), examples: data, output: nil)
        }
        let path = try temporaryDirectory() + "/bad.jsonl"
        for (text, needles) in [
            ("{\"text\": \"hello\"}\n", ["bad.jsonl:1", "UTF-8 bytes", "only 128 ids"]),
            ("{\"tokens\": [1, 2]}\n\n{\"tokens\": [1, 200]}\n", ["bad.jsonl:3", "not a token id in 0..<128"]),
            ("{\"prompt_tokens\": [1]}\n", ["bad.jsonl:1", "expected \"text\""]),
            ("{\"tokens\": [1, 2], \"task\": 3}\n", ["'task' must be a string"]),
            ("[1, 2]\n", ["must be a JSON object"]),
            ("\n\n", ["no examples"]),
        ] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            assertThrows(text.contains("200") || text.contains("hello") || text == "\n\n" ? .invalidArgument : .format, containing: needles) {
                _ = try TrainingExample.load(path: path, vocabSize: 128, maxLength: 64)
            }
        }
    }

    func testJSONLinesFormats() throws {
        let path = try temporaryDirectory() + "/data.jsonl"
        try Data("""
            {"prompt": "ab", "completion": "c", "task": "t"}
            {"text": "xyz"}
            {"prompt_tokens": [5, 6], "completion_tokens": [7]}

            """.utf8).write(to: URL(fileURLWithPath: path))
        let examples = try TrainingExample.load(path: path, vocabSize: 256, maxLength: 16)
        XCTAssertEqual(examples, [
            TrainingExample(tokens: [97, 98, 99], targets: [false, false, true], task: "t"),
            TrainingExample(tokens: [120, 121, 122], targets: [false, true, true], task: nil),
            TrainingExample(tokens: [5, 6, 7], targets: [false, false, true], task: nil),
        ])
        XCTAssertEqual(examples[0].promptLength, 2)
    }

    private func writeData(_ examples: [TrainingExample]) throws -> String {
        let path = try temporaryDirectory() + "/data.jsonl"
        let lines = examples.map { example in
            let prompt = example.tokens[..<example.promptLength].map(String.init).joined(separator: ",")
            let completion = example.tokens[example.promptLength...].map(String.init).joined(separator: ",")
            return "{\"prompt_tokens\": [\(prompt)], \"completion_tokens\": [\(completion)], \"task\": \"\(example.task ?? "")\"}"
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// An expert that is not a LoRA (as a host's custom expert is): training cannot differentiate it.
private final class ZeroExpert: Expert {
    let name = "custom"
    func adapts(layer: Int, module: ProjectionModule) -> Bool { module == .q }
    func delta(layer: Int, module: ProjectionModule, rows: UnsafePointer<Float>, count: Int, into delta: UnsafeMutablePointer<Float>) {}
}
