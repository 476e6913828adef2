import Foundation
import XCTest
@testable import LoRAMixer

/// Two optimiser steps of three training configurations against torch autograd and
/// torch.optim.AdamW (`Tests/Fixtures/train_step` on llama_f32 and `Tests/Fixtures/train_step_mamba`
/// on mamba_f32, written by tools/make_train_fixture.py [--family mamba]; their READMEs give the
/// comparison protocol): loss terms, every gradient, and the parameters after each step, within
/// 1e-4 relative.
final class TrainingOracleTests: XCTestCase {
    private let rtol: Float = 1e-4

    private struct Case {
        let json: JSONObject
        let name: String
        func string(_ key: String) -> String { json[key]?.string ?? "" }
        func float(_ key: String) -> Float { Float(json[key]?.double ?? .nan) }
        func int(_ key: String) -> Int { json[key]?.int ?? -1 }
    }

    func testJointTopKContextRouter() throws { try check("joint_topk_context") }
    func testRouterRegimeSoftTokenRouter() throws { try check("router_soft_token") }
    func testJointLabelRouting() throws { try check("joint_label") }

    func testMambaJointTopKContextRouter() throws { try check("joint_topk_context", fixture: "train_step_mamba", model: "mamba_f32") }
    func testMambaRouterRegimeSoftTokenRouter() throws { try check("router_soft_token", fixture: "train_step_mamba", model: "mamba_f32") }
    func testMambaJointLabelRouting() throws { try check("joint_label", fixture: "train_step_mamba", model: "mamba_f32") }

    /// Case `name` of the oracle folder `fixture` (cases.json + {name}.safetensors), trained on the
    /// model fixture `model` with its adapters e0, e1, e2 and the case's router file.
    private func check(_ name: String, fixture: String = "train_step", model: String = "llama_f32") throws {
        let root = try JSONParser.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path(fixture, "cases.json")))),
                                        context: "\(fixture)/cases.json")
        guard let object = root.object, let entry = object["cases"]?.array?.compactMap(\.object).first(where: { $0["name"]?.string == name })
                ?? object["cases"]?.object?[name]?.object else {
            return XCTFail("\(fixture)/cases.json has no case \(name)")
        }
        XCTAssertEqual((object["model"]?.string.map { ($0 as NSString).lastPathComponent }), model, "\(fixture): model fixture")
        let spec = Case(json: entry, name: name)
        let experts = object["experts"]?.array?.compactMap(\.string) ?? []
        let examples = (object["examples"]?.array ?? []).compactMap(\.object).map { example in
            TrainingExample(tokens: example["tokens"]?.array?.compactMap(\.int).map(Int32.init) ?? [],
                            targets: example["targets"]?.array?.compactMap(\.int).map { $0 != 0 } ?? [],
                            task: example["label"]?.int.map { experts[$0] })
        }
        XCTAssertEqual(examples.count, 3)
        let tensors = try SafeTensorsFile(path: Fixtures.path(fixture, "\(name).safetensors"))

        var options = TrainingOptions()
        options.regime = TrainingOptions.Regime(rawValue: spec.string("regime"))!
        options.routing = TrainingOptions.Routing(rawValue: spec.string("routing"))!
        options.topK = spec.int("top_k")
        options.temperature = spec.float("temperature")
        options.alpha = spec.float("alpha")
        options.lambda = spec.float("lambda")
        options.beta = spec.float("beta")
        options.sensitiveExperts = entry["sensitive"]?.array?.compactMap(\.string) ?? []
        options.learningRate = spec.float("lr")
        options.minLearningRate = spec.float("min_lr")
        options.warmupSteps = spec.int("warmup")
        options.steps = spec.int("total_steps")
        options.weightDecay = spec.float("wd")
        options.beta1 = spec.float("b1")
        options.beta2 = spec.float("b2")
        options.epsilon = spec.float("eps")
        options.clipNorm = spec.float("clip")
        options.batchSize = examples.count
        let routerFile = (spec.string("router") as NSString).lastPathComponent
        let trainer = try Trainer(mixer: Fixtures.mixer(model, router: routerFile), options: options, examples: examples,
                                  output: nil)
        let parameters = trainer.mixture.parameters
        let trainable = Set(entry["trainable"]?.array?.compactMap(\.string) ?? parameters.filter(\.trainable).map(\.name))
        XCTAssertEqual(Set(parameters.filter(\.trainable).map(\.name)), trainable, "\(name): trainable tensors")
        let schedule = entry["lr_schedule"]?.array?.compactMap(\.double) ?? []
        for (n, lr) in schedule.enumerated() {
            XCTAssertEqual(Double(trainer.optimizer.learningRate(step: n)), lr, accuracy: 1e-7 * lr, "\(name): lr of step \(n)")
        }

        for (n, step) in (entry["steps"]?.array?.compactMap(\.object) ?? []).enumerated() {
            let what = "\(name) step \(n)"
            let (losses, _, gradients) = try trainer.gradients(for: examples, routing: options.routing)
            for (key, value) in [("loss", losses.total), ("ce", losses.crossEntropy), ("balance", losses.balance),
                                 ("entropy_term", losses.entropy), ("preserve", losses.preserve)] {
                let expected = step[key]?.double ?? .nan
                XCTAssertEqual(value, expected, accuracy: Double(rtol) * max(abs(expected), 1e-3), "\(what): \(key)")
            }
            let norm = AdamW.norm(gradients)
            let expectedNorm = step["grad_norm"]?.double ?? .nan
            XCTAssertEqual(norm, expectedNorm, accuracy: Double(rtol) * expectedNorm, "\(what): grad_norm")

            let summaries = step["tensors"]?.object
            let before = parameters.map(\.values.array)
            var used = gradients
            for (index, parameter) in parameters.enumerated() where parameter.trainable {
                let summary = summaries?[parameter.name]?.array?.compactMap(\.double).map(Float.init) ?? []
                XCTAssertEqual(summary.count, 4, "\(what): no summary for \(parameter.name)")
                let gradient = gradients[index]?.array ?? Array(repeating: 0, count: parameter.count)
                if tensors.info("step\(n).grad.\(parameter.name)") != nil {
                    let expected = try tensors.tensor("step\(n).grad.\(parameter.name)").floats()
                    assertRelative(gradient, expected, "\(what): gradient of \(parameter.name)")
                    if entry["update_from_oracle_grads"]?.bool == true { used[index] = FloatBuffer(expected) }
                } else if summary.count == 4 {
                    assertSummary(gradient, norm: summary[0], probe: summary[1], "\(what): gradient of \(parameter.name)")
                }
            }
            _ = trainer.optimizer.step(n, parameters: parameters, gradients: used)
            for (index, parameter) in parameters.enumerated() where parameter.trainable {
                let summary = summaries?[parameter.name]?.array?.compactMap(\.double).map(Float.init) ?? []
                let after = parameter.values.array
                if tensors.info("step\(n).param.\(parameter.name)") != nil {
                    assertRelative(after, try tensors.tensor("step\(n).param.\(parameter.name)").floats(), "\(what): \(parameter.name) after the step")
                } else if summary.count == 4 {
                    let update = zip(after, before[index]).map { $0 - $1 }
                    assertSummary(update, norm: summary[2], probe: summary[3], "\(what): update of \(parameter.name)")
                }
            }
        }
    }

    /// max|a - b| <= rtol * max|b|.
    private func assertRelative(_ actual: [Float], _ expected: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, what, file: file, line: line)
        let scale = expected.map(abs).max() ?? 0
        let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, rtol * max(scale, 1e-12), "\(what): max |diff| \(worst), max |expected| \(scale)", file: file, line: line)
    }

    /// The L2 norm within rtol, and the probe sum_j x_j ((j mod 7) - 3) within rtol ||x|| ||c||.
    private func assertSummary(_ x: [Float], norm: Float, probe: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let actualNorm = Float(x.reduce(Double(0)) { $0 + Double($1) * Double($1) }.squareRoot())
        let weights = x.indices.map { Double($0 % 7 - 3) }
        let actualProbe = Float(zip(x, weights).reduce(Double(0)) { $0 + Double($1.0) * $1.1 })
        let weightNorm = Float(weights.reduce(0) { $0 + $1 * $1 }.squareRoot())
        XCTAssertEqual(actualNorm, norm, accuracy: rtol * max(norm, 1e-12), "\(what): norm", file: file, line: line)
        XCTAssertEqual(actualProbe, probe, accuracy: rtol * max(norm, 1e-12) * weightNorm, "\(what): probe", file: file, line: line)
    }
}
