import Foundation
import XCTest
@testable import LoRAMixer

/// Bad models, adapters, routers and arguments: each must throw the right kind with a message that
/// names the file, tensor or argument.
final class BadInputTests: TemporaryFolderTestCase {
    /// Failures of the file system are `.io` (LMX_ERR_IO) naming the path, never `.invalidArgument`:
    /// a PEFT folder that cannot be created, a router file in a folder that does not exist, a
    /// plugin path that is a folder's entry that does not exist.
    func testFileSystemFailuresAreIOErrorsNamingThePath() throws {
        let mixer = try Fixtures.mixer("llama_f32")
        let blocker = (directory as NSString).appendingPathComponent("a_file")
        XCTAssertTrue(FileManager.default.createFile(atPath: blocker, contents: Data("in the way\n".utf8)))
        let expert = try XCTUnwrap(mixer.experts.first as? LoRAExpert)
        assertThrows(.io, containing: ["a_file", "not a folder"]) {
            try expert.writePEFT(to: blocker + "/e0", baseModel: "base", config: mixer.model.config)
        }
        let router = try XCTUnwrap(mixer.router)
        let missing = (directory as NSString).appendingPathComponent("missing/router.safetensors")
        assertThrows(.io, containing: [missing, "No such file"]) { try router.write(to: missing) }
        assertThrows(.io, containing: ["a_file/plugin.so", "Not a directory"]) {
            try mixer.loadPlugin(path: blocker + "/plugin.so")
        }
    }

    /// A copy of a fixture model folder whose config.json is edited by `edit`.
    private func modelCopy(editing edit: (inout [String: Any]) -> Void) throws -> String {
        let target = (directory as NSString).appendingPathComponent("model")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.path("llama_f32", "model.safetensors"),
                                         toPath: (target as NSString).appendingPathComponent("model.safetensors"))
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("llama_f32", "config.json")))
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: (target as NSString).appendingPathComponent("config.json")))
        return target
    }

    func testMissingModelFolder() {
        assertThrows(.io, containing: ["/no/such/model", "model folder does not exist"]) {
            _ = try LanguageModel(directory: "/no/such/model")
        }
    }

    func testUnknownArchitectureIsRefusedByName() throws {
        let path = try modelCopy { $0["architectures"] = ["GPT2LMHeadModel"] }
        assertThrows(.format, containing: ["GPT2LMHeadModel", "config.json", "LlamaForCausalLM"]) {
            _ = try LanguageModel(directory: path)
        }
    }

    func testUnsupportedRopeTypeAndActivation() throws {
        let rope = try modelCopy { $0["rope_parameters"] = ["rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0] }
        assertThrows(.format, containing: ["yarn"]) { _ = try LanguageModel(directory: rope) }
        try FileManager.default.removeItem(atPath: rope)
        let activation = try modelCopy { $0["hidden_act"] = "gelu" }
        assertThrows(.format, containing: ["gelu"]) { _ = try LanguageModel(directory: activation) }
    }

    func testConfigThatDoesNotMatchTheWeights() throws {
        let path = try modelCopy { $0["hidden_size"] = 32 }
        assertThrows(.shape, containing: ["model.embed_tokens.weight", "[128, 32]"]) {
            _ = try LanguageModel(directory: path)
        }
    }

    func testMissingLMHeadWhenUntied() throws {
        let path = try modelCopy { _ in }
        // Rewrite the weights without lm_head.weight.
        let file = try SafeTensorsFile(path: Fixtures.path("llama_f32", "model.safetensors"))
        let tensors = try file.tensorNames.filter { $0 != "lm_head.weight" }.map { name in
            let view = try file.tensor(name)
            return (name: name, dtype: view.dtype, shape: view.shape, data: [UInt8](view.bytes))
        }
        try SafeTensorsWriter.write(tensors, metadata: [:], to: (path as NSString).appendingPathComponent("model.safetensors"))
        assertThrows(.notFound, containing: ["lm_head.weight", "tie_word_embeddings"]) {
            _ = try LanguageModel(directory: path)
        }
    }

    func testAdapterForAnotherModelShape() throws {
        let model = try LanguageModel(directory: Fixtures.path("mistral_f32"))
        assertThrows(.shape, containing: ["adapter_model.safetensors", "q_proj", "lora_B"]) {
            _ = try LoRAExpert(peftDirectory: Fixtures.path("llama_f32", "adapters", "e0"), name: "e0", config: model.config)
        }
    }

    func testAdapterTargetingAModuleWeDoNotRoute() throws {
        let adapter = (directory as NSString).appendingPathComponent("adapter")
        try FileManager.default.createDirectory(atPath: adapter, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.path("llama_f32", "adapters", "e0", "adapter_config.json"),
                                         toPath: (adapter as NSString).appendingPathComponent("adapter_config.json"))
        try SafeTensorsWriter.write([(name: "base_model.model.lm_head.lora_A.weight", shape: [4, 64], data: Array(repeating: 0, count: 256))],
                                    metadata: [:], to: (adapter as NSString).appendingPathComponent("adapter_model.safetensors"))
        let model = try LanguageModel(directory: Fixtures.path("llama_f32"))
        assertThrows(.format, containing: ["base_model.model.lm_head.lora_A.weight"]) {
            _ = try LoRAExpert(peftDirectory: adapter, name: "x", config: model.config)
        }
    }

    func testAdapterRankDisagreeingWithConfig() throws {
        let adapter = (directory as NSString).appendingPathComponent("adapter")
        try FileManager.default.copyItem(atPath: Fixtures.path("llama_f32", "adapters", "e1"), toPath: adapter)
        let configPath = (adapter as NSString).appendingPathComponent("adapter_config.json")
        var text = try String(contentsOfFile: configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"v_proj\": 4", with: "\"v_proj\": 2")
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
        let model = try LanguageModel(directory: Fixtures.path("llama_f32"))
        assertThrows(.shape, containing: ["v_proj", "rank 4", "r = 2"]) {
            _ = try LoRAExpert(peftDirectory: adapter, name: "x", config: model.config)
        }
    }

    func testRouterExpertNamesMustMatch() throws {
        let model = try LanguageModel(directory: Fixtures.path("llama_f32"))
        let fewer = Mixer(model: model)
        try fewer.addPEFT(name: "e0", directory: Fixtures.path("llama_f32", "adapters", "e0"))
        try fewer.addPEFT(name: "e1", directory: Fixtures.path("llama_f32", "adapters", "e1"))
        assertThrows(.notFound, containing: ["router.safetensors", "'e2'"]) {
            try fewer.loadRouter(path: Fixtures.path("llama_f32", "router.safetensors"))
        }
        let more = try Fixtures.mixer("llama_f32", router: nil)
        try more.addPEFT(name: "e3", directory: Fixtures.path("llama_f32", "adapters", "e0"))
        assertThrows(.notFound, containing: ["'e3'"]) {
            try more.loadRouter(path: Fixtures.path("llama_f32", "router.safetensors"))
        }
    }

    func testRouterForAnotherModelShape() throws {
        let mixer = try Fixtures.mixer("llama_f32", router: nil)
        // qwen2's router has the same expert names and d_model 64: matching. mistral's too; so
        // build one with a wrong d_model instead.
        let path = (directory as NSString).appendingPathComponent("router.safetensors")
        let metadata = ["format": "loramixer.router", "version": "1", "experts": "[\"e0\",\"e1\",\"e2\"]", "top_k": "2"]
        try SafeTensorsWriter.write((0..<2).map { (name: "router.layers.\($0).weight", shape: [3, 32], data: Array(repeating: Float(0), count: 96)) },
                                    metadata: metadata, to: path)
        assertThrows(.shape, containing: ["router.layers.0.weight", "[3, 64]"]) { try mixer.loadRouter(path: path) }
    }

    func testRouterMetadataErrors() throws {
        let mixer = try Fixtures.mixer("llama_f32", router: nil)
        let path = (directory as NSString).appendingPathComponent("router.safetensors")
        let tensors = (0..<2).map { (name: "router.layers.\($0).weight", shape: [3, 64], data: Array(repeating: Float(0), count: 192)) }
        let base = ["format": "loramixer.router", "version": "1", "experts": "[\"e0\",\"e1\",\"e2\"]", "top_k": "2"]
        for (change, needle) in [(["top_k": "4"], "top_k"), (["format": "other"], "format"), (["scope": "projection"], "projection"),
                                 (["experts": "[\"e0\",\"e0\",\"e1\"]"], "twice"), (["input": "sequence"], "input")] {
            try SafeTensorsWriter.write(tensors, metadata: base.merging(change) { $1 }, to: path)
            assertThrows(.format, containing: [needle]) { try mixer.loadRouter(path: path) }
        }
        try SafeTensorsWriter.write(Array(tensors.prefix(1)), metadata: base, to: path)
        assertThrows(.notFound, containing: ["router.layers.1.weight"]) { try mixer.loadRouter(path: path) }
    }

    func testDuplicateExpertNameAndExpertAfterRouter() throws {
        let mixer = try Fixtures.mixer("llama_f32")
        assertThrows(.invalidArgument, containing: ["'e0'"]) {
            try mixer.addPEFT(name: "e0", directory: Fixtures.path("llama_f32", "adapters", "e0"))
        }
        assertThrows(.state, containing: ["router"]) {
            try mixer.addPEFT(name: "e9", directory: Fixtures.path("llama_f32", "adapters", "e0"))
        }
    }

    func testSessionArguments() throws {
        let session = try Fixtures.mixer("llama_f32").makeSession(contextLength: 4)
        assertThrows(.invalidArgument, containing: ["128", "vocab"]) { _ = try session.evaluate([1, 128], logits: .last) }
        assertThrows(.invalidArgument, containing: ["-1"]) { _ = try session.evaluate([-1], logits: .last) }
        assertThrows(.invalidArgument, containing: ["no tokens"]) { _ = try session.evaluate([], logits: .last) }
        assertThrows(.state, containing: ["n_ctx 4"]) { _ = try session.evaluate([1, 2, 3, 4, 5], logits: .last) }
        XCTAssertEqual(session.position, 0, "a failed evaluate leaves the session unchanged")
        assertThrows(.invalidArgument, containing: ["3 weights"]) { try session.setRouting(.fixed([1, 0])) }
        assertThrows(.invalidArgument, containing: ["not finite"]) { try session.setRouting(.fixed([1, .nan, 0])) }
        assertThrows(.invalidArgument, containing: ["top_k 4"]) { try session.setTopK(4) }
        assertThrows(.invalidArgument, containing: ["temperature"]) { try session.setTemperature(-1) }
        assertThrows(.invalidArgument, containing: ["n_ctx 65"]) { _ = try Fixtures.mixer("llama_f32").makeSession(contextLength: 65) }
        let noRouter = try Fixtures.mixer("llama_f32", router: nil).makeSession()
        assertThrows(.state, containing: ["router"]) { try noRouter.setRouting(.learned) }
        assertThrows(.state, containing: ["prompt is empty"]) { _ = try noRouter.generate(prompt: [], options: .init()) }
    }
}
