import Foundation
import XCTest
@testable import LoRAMixer

/// The tokenizer facade against the oracles of tools/make_text_fixtures.py (Tests/Fixtures/text/):
/// configuration files as transformers reads them, parse-special ids from `tokenizers`, GGUF
/// vocabularies, malformed GGUF files; and the streaming decoder, the bundled model's tokenizer
/// and text generation.
final class TokenizerTextTests: XCTestCase {
    private func text(_ components: String...) -> String {
        components.reduce(Fixtures.path("text")) { ($0 as NSString).appendingPathComponent($1) }
    }

    private func json(_ path: String) throws -> JSONValue {
        try JSONParser.parse(Array(Data(contentsOf: URL(fileURLWithPath: path))), context: path)
    }

    private func ids(_ value: JSONValue?) throws -> [Int32] {
        try XCTUnwrap(value?.array).map { Int32(try XCTUnwrap($0.int)) }
    }

    private func optionalID(_ value: JSONValue?) -> Int32? {
        value?.int.map(Int32.init)
    }

    // MARK: - Configuration files

    func testConfiguredFoldersMatchTransformers() throws {
        var rendered = 0
        for name in ["configured", "configured_list", "bare"] {
            let folder = text(name)
            let expected = try XCTUnwrap(json(text(name, "expected.json")).object)
            let tokenizer = try Tokenizer(directory: folder)
            let special = tokenizer.specialTokens
            XCTAssertEqual(special.bos, optionalID(expected["bos_token_id"]), "\(name): bos")
            XCTAssertEqual(special.eos, optionalID(expected["eos_token_id"]), "\(name): eos")
            XCTAssertEqual(special.pad, optionalID(expected["pad_token_id"]), "\(name): pad")
            XCTAssertEqual(special.unk, optionalID(expected["unk_token_id"]), "\(name): unk")
            XCTAssertEqual(special.bosText, expected["bos_token"]?.string ?? "", "\(name): bos text")
            XCTAssertEqual(special.eosText, expected["eos_token"]?.string ?? "", "\(name): eos text")
            XCTAssertEqual(tokenizer.chatTemplateSource != nil, expected["has_chat_template"]?.bool, name)
            let generation = expected["generation_eos_token_ids"]?.array == nil ? [] : try ids(expected["generation_eos_token_ids"])
            XCTAssertEqual(try TokenizerConfiguration(directory: folder).generationEOS, generation, "\(name): generation eos")
            // the stop ids hold the generation config's, the EOS and the turn-ending specials
            var stops = Set(generation)
            if let eos = special.eos { stops.insert(eos) }
            if let eot = tokenizer.id(forToken: "<|eot_id|>") { stops.insert(eot) }
            XCTAssertEqual(special.endOfTurn, stops.sorted(), "\(name): end of turn")
            for entry in try XCTUnwrap(expected["cases"]?.array) {
                let object = try XCTUnwrap(entry.object)
                let messages = try XCTUnwrap(object["messages"]?.array)
                let add = try XCTUnwrap(object["add_generation_prompt"]?.bool)
                let what = "\(name): \(object["name"]?.string ?? "?") add_generation_prompt=\(add)"
                let output = try tokenizer.applyChatTemplate(messages: messages, addGenerationPrompt: add)
                XCTAssertEqual(output, object["text"]?.string, what)
                XCTAssertEqual(try tokenizer.encode(output, addSpecialTokens: false), try ids(object["ids"]), what)
                rendered += 1
            }
            if expected["has_chat_template"]?.bool == false {
                assertThrows(.state, containing: ["no chat template"]) {
                    _ = try tokenizer.applyChatTemplate(messages: Tokenizer.messages([("user", "hi")]), addGenerationPrompt: true)
                }
            }
        }
        XCTAssertEqual(rendered, 32)
    }

    /// A folder with `files` (name -> contents) beside the llama3 fixture's tokenizer.json.
    private func folder(_ files: [String: String]) throws -> String {
        let path = NSTemporaryDirectory() + "lmx-tokconf-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.path("tokenizers", "llama3", "tokenizer.json"),
                                         toPath: path + "/tokenizer.json")
        for (name, contents) in files {
            try contents.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
        }
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testBadConfigurationFilesNameFileAndKey() throws {
        assertThrows(.format, containing: ["tokenizer_config.json", "`bos_token`", "must be a string or an object", "number"]) {
            _ = try Tokenizer(directory: try self.folder(["tokenizer_config.json": #"{"bos_token": 3}"#]))
        }
        assertThrows(.format, containing: ["special_tokens_map.json", "`eos_token`", "object with a string `content`"]) {
            _ = try Tokenizer(directory: try self.folder(["special_tokens_map.json": #"{"eos_token": {"id": 1}}"#]))
        }
        assertThrows(.format, containing: ["tokenizer_config.json", "`chat_template`", "without a template named \"default\""]) {
            _ = try Tokenizer(directory: try self.folder(["tokenizer_config.json": #"{"chat_template": [{"name": "rag", "template": "x"}]}"#]))
        }
        assertThrows(.format, containing: ["tokenizer_config.json", "`chat_template`", "must be a string or a list"]) {
            _ = try Tokenizer(directory: try self.folder(["tokenizer_config.json": #"{"chat_template": 7}"#]))
        }
        assertThrows(.format, containing: ["generation_config.json", "`eos_token_id`", "non-negative 32-bit integer"]) {
            _ = try Tokenizer(directory: try self.folder(["generation_config.json": #"{"eos_token_id": [1, -2]}"#]))
        }
        assertThrows(.format, containing: ["generation_config.json", "`eos_token_id`"]) {
            _ = try Tokenizer(directory: try self.folder(["generation_config.json": #"{"eos_token_id": "</s>"}"#]))
        }
        assertThrows(.format, containing: ["tokenizer_config.json", "expected a JSON object, found array"]) {
            _ = try Tokenizer(directory: try self.folder(["tokenizer_config.json": "[]"]))
        }
        assertThrows(.format, containing: ["special_tokens_map.json"]) {
            _ = try Tokenizer(directory: try self.folder(["special_tokens_map.json": "{\"bos_token\": "]))
        }
        assertThrows(.format, containing: ["configured pad_token", "\"<nope>\"", "neither an added token nor in the vocabulary"]) {
            _ = try Tokenizer(directory: try self.folder(["tokenizer_config.json": #"{"pad_token": "<nope>"}"#]))
        }
        // null entries are absent, and a vocabulary entry (not an added token) resolves too
        let tokenizer = try Tokenizer(directory: try folder(["tokenizer_config.json": #"{"bos_token": null, "unk_token": "the", "chat_template": null}"#]))
        XCTAssertNil(tokenizer.specialTokens.bos)
        XCTAssertEqual(tokenizer.specialTokens.unk, tokenizer.id(forToken: "the"))
        XCTAssertNotNil(tokenizer.specialTokens.unk)
        XCTAssertNil(tokenizer.chatTemplateSource)
    }

    /// Bad messages and bad templates reach the caller through the tokenizer as precise errors.
    func testChatTemplateErrorsThroughTheTokenizer() throws {
        let tokenizer = try Tokenizer(directory: text("configured"))
        assertThrows(.invalidArgument, containing: ["chat message 1 has no 'role'"]) {
            _ = try tokenizer.applyChatTemplate(messages: [.object(["role": .string("user"), "content": .string("a")]),
                                                           .object(["content": .string("b")])], addGenerationPrompt: false)
        }
        assertThrows(.invalidArgument, containing: ["'content' must be"]) {
            _ = try tokenizer.applyChatTemplate(messages: [.object(["role": .string("user"), "content": JSONValue(5)])],
                                                addGenerationPrompt: false)
        }
        assertThrows(.invalidArgument, containing: ["chat message 0 must be an object"]) {
            _ = try tokenizer.applyChatTemplate(messages: [.string("hi")], addGenerationPrompt: false)
        }
        let llama3 = try String(contentsOfFile: Fixtures.path("tokenizers", "llama3", "tokenizer.json"), encoding: .utf8)
        func withTemplate(_ template: String) throws -> Tokenizer {
            // a template that cannot compile does not stop the tokenizer from loading
            try Tokenizer(json: Array(llama3.utf8), configuration: TokenizerConfiguration(bosToken: "<|begin_of_text|>", chatTemplate: template))
        }
        let messages = Tokenizer.messages([("user", "hi")])
        let broken = try withTemplate("{% for m in messages %}{{ m.content }")
        XCTAssertThrowsError(try broken.applyChatTemplate(messages: messages, addGenerationPrompt: false)) { error in
            XCTAssertTrue(String(describing: error).contains("never closed"), "\(error)")
        }
        let endless = try withTemplate("{% for i in range(1000000000) %}{{ bos_token }}{% endfor %}")
        let start = Date()
        XCTAssertThrowsError(try endless.applyChatTemplate(messages: messages, addGenerationPrompt: false)) { error in
            XCTAssertTrue(String(describing: error).contains("exceeds the limit"), "\(error)")
        }
        let nested = try withTemplate("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")
        XCTAssertThrowsError(try nested.applyChatTemplate(messages: messages, addGenerationPrompt: false)) { error in
            XCTAssertTrue(String(describing: error).contains("iterations"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 20, "bounded templates fail fast")
        XCTAssertEqual(try withTemplate("{{ bos_token }}{{ messages[0].content }}").applyChatTemplate(messages: messages, addGenerationPrompt: true),
                       "<|begin_of_text|>hi")
    }

    // MARK: - parse_special

    func testParseSpecialFalseMatchesEncodeSpecialTokens() throws {
        let document = try XCTUnwrap(json(text("parse_special.json")).object)
        var checked = 0, differing = 0
        for name in TokenizerTests.names {
            let tokenizer = try Tokenizer(directory: Fixtures.path("tokenizers", name))
            for entry in try XCTUnwrap(document[name]?.array) {
                let object = try XCTUnwrap(entry.object)
                let text = try XCTUnwrap(object["text"]?.string)
                let plain = try ids(object["ids"])
                XCTAssertEqual(try tokenizer.encode(text, addSpecialTokens: false, parseSpecial: false), plain, "\(name): \(text.debugDescription)")
                XCTAssertEqual(try tokenizer.encode(text, addSpecialTokens: true, parseSpecial: false), try ids(object["ids_special"]),
                               "\(name): \(text.debugDescription) with special tokens")
                // no special added token can come out of user text, only from the template (the
                // model's own unk, for characters it cannot spell, is no forgery)
                var special = Set(tokenizer.specialTokenIDs)
                if let unknown = tokenizer.model.unknownID { special.remove(unknown) }
                XCTAssertTrue(plain.allSatisfy { !special.contains($0) }, "\(name): \(text.debugDescription)")
                if try tokenizer.encode(text, addSpecialTokens: false) != plain { differing += 1 }
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 4 * 40)
        XCTAssertGreaterThan(differing, 4 * 10, "the texts hold special tokens")
    }

    // MARK: - GGUF

    private func checkCases(_ tokenizer: Tokenizer, _ document: JSONObject, _ name: String) throws -> Int {
        var checked = 0
        for entry in try XCTUnwrap(document["cases"]?.array) {
            let object = try XCTUnwrap(entry.object)
            let text = try XCTUnwrap(object["text"]?.string)
            let special = try ids(object["ids_special"])
            XCTAssertEqual(try tokenizer.encode(text, addSpecialTokens: false), try ids(object["ids"]), "\(name): \(text.debugDescription)")
            XCTAssertEqual(try tokenizer.encode(text, addSpecialTokens: true), special, "\(name): \(text.debugDescription) with special tokens")
            XCTAssertEqual(tokenizer.decode(special, skipSpecialTokens: false), object["decoded"]?.string, "\(name): decode \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(special, skipSpecialTokens: true), object["decoded_skip"]?.string, "\(name): decode skipping specials \(text.debugDescription)")
            checked += 1
        }
        return checked
    }

    func testByteLevelGGUFMatchesTokenizers() throws {
        for name in ["gpt2_llama3", "gpt2_qwen2"] {
            let document = try XCTUnwrap(json(text(name + ".json")).object)
            let fromFile = try Tokenizer(gguf: GGUFFile(path: text(name + ".gguf")))
            let loaded = try Tokenizer.load(path: text(name + ".gguf"))
            for tokenizer in [fromFile, loaded] {
                XCTAssertEqual(tokenizer.vocabularySize, document["vocab_size"]?.int, name)
                XCTAssertEqual(tokenizer.specialTokens.bos, optionalID(document["bos"]), name)
                XCTAssertEqual(tokenizer.specialTokens.eos, optionalID(document["eos"]), name)
                XCTAssertEqual(tokenizer.specialTokens.bosText, "<|begin_of_text|>", name)
                XCTAssertEqual(tokenizer.specialTokens.eosText, "<|eot_id|>", name)
                XCTAssertEqual(tokenizer.specialTokenIDs, try ids(document["special_ids"]), name)
                XCTAssertEqual(tokenizer.chatTemplateSource, document["chat_template"]?.string, name)
                XCTAssertGreaterThanOrEqual(try checkCases(tokenizer, document, name), 170)
            }
            // the template renders with the file's BOS, as from a folder
            let messages = Tokenizer.messages([("user", "Hi")])
            XCTAssertEqual(try fromFile.applyChatTemplate(messages: messages, addGenerationPrompt: true),
                           "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        }
    }

    func testSentencePieceGGUFMatchesTokenizers() throws {
        let document = try XCTUnwrap(json(text("llama_spm.json")).object)
        let tokenizer = try Tokenizer.load(path: text("llama_spm.gguf"))
        XCTAssertEqual(tokenizer.vocabularySize, document["vocab_size"]?.int)
        XCTAssertEqual(tokenizer.specialTokens.bos, 1)
        XCTAssertEqual(tokenizer.specialTokens.eos, 2)
        XCTAssertEqual(tokenizer.specialTokens.bosText, "<s>")
        XCTAssertEqual(try checkCases(tokenizer, document, "llama_spm.gguf"), try XCTUnwrap(document["cases"]?.array).count)
        XCTAssertEqual(tokenizer.specialTokens.endOfTurn, [2])
    }

    func testSentencePieceTokenizerJSONMatchesTokenizers() throws {
        let document = try XCTUnwrap(json(text("llama_spm.json")).object)
        let path = text("llama_spm_tokenizer.json")
        let tokenizer = try Tokenizer(json: Array(Data(contentsOf: URL(fileURLWithPath: path))), context: path)
        XCTAssertEqual(tokenizer.vocabularySize, document["vocab_size"]?.int)
        _ = try checkCases(tokenizer, document, "llama_spm_tokenizer.json")
    }

    /// The merges recovered from the scores of llama_spm.gguf are exactly those transformers'
    /// generate_merges recovers: the trained merges in order, and extra splits of some pieces.
    func testMergesFromScoresKeepTheTrainedOrder() throws {
        let file = try GGUFFile(path: text("llama_spm.gguf"))
        let tokens = try XCTUnwrap(file.strings("tokenizer.ggml.tokens"))
        let recovered = try Tokenizer.mergesFromScores(tokens: tokens, scores: try XCTUnwrap(file.floats("tokenizer.ggml.scores")),
                                                   types: try file.ints("tokenizer.ggml.token_type"))
            .map { try XCTUnwrap($0.array).compactMap(\.string) }
        let source = try XCTUnwrap(json(text("llama_spm_tokenizer.json")).object?["model"]?.object)
        let trained = try XCTUnwrap(source["merges"]?.array).map { try XCTUnwrap($0.array).compactMap(\.string) }
        let document = try XCTUnwrap(json(text("llama_spm.json")).object)
        XCTAssertEqual(recovered.count, trained.count + (document["extra_recovered_merges"]?.int ?? -1))
        let transformers = try XCTUnwrap(document["recovered_merges"]?.array).map { try XCTUnwrap($0.string).split(separator: " ").map(String.init) }
        XCTAssertEqual(recovered, transformers, "as transformers' generate_merges orders them")
        let trainedSet = Set(trained)
        XCTAssertEqual(recovered.filter { trainedSet.contains($0) }, trained)
    }

    func testBadGGUFTokenizersAreRefused() throws {
        func load(_ name: String) throws { _ = try Tokenizer(gguf: GGUFFile(path: text("bad", name + ".gguf"))) }
        XCTAssertNoThrow(try load("good_gpt2"))
        assertThrows(.format, containing: ["truncated_tokens.gguf", "tokenizer.ggml.tokens"]) { try load("truncated_tokens") }
        assertThrows(.format, containing: ["tokenizer.ggml.token_type has 6 entries", "tokenizer.ggml.tokens 7"]) { try load("token_type_count") }
        assertThrows(.format, containing: ["tokenizer.ggml.scores has 5 entries", "tokenizer.ggml.tokens 6"]) { try load("scores_count") }
        assertThrows(.format, containing: ["tokenizer.ggml.model \"bert\" is not supported", "gpt2, llama"]) { try load("model_bert") }
        assertThrows(.format, containing: ["tokenizer.ggml.pre \"falcon\" is not supported", "llama-bpe"]) { try load("pre_falcon") }
        assertThrows(.format, containing: ["tokenizer.ggml.bos_token_id = 7 is outside the vocabulary (7 tokens)"]) { try load("bos_out_of_range") }
        assertThrows(.format, containing: ["merge 1", "\"zz\"", "not in the vocabulary"]) { try load("merge_unknown_token") }
        // a GGUF file without tokenizer metadata, and the wrong value types
        assertThrows(.format, containing: ["no tokenizer.ggml.model"]) {
            _ = try Tokenizer(gguf: GGUFFile(path: Fixtures.path("gguf", "tensors.gguf")))
        }
        assertThrows(.io, containing: []) { _ = try Tokenizer.load(path: self.text("bad", "missing.gguf")) }
    }

    func testLoadDispatchesFolderAndGGUF() throws {
        let folder = try Tokenizer.load(path: Fixtures.path("tokenizers", "llama3"))
        let gguf = try Tokenizer.load(path: text("gpt2_llama3.gguf"))
        let sample = "Hello world, 東京 😀 and 12345"
        XCTAssertEqual(try folder.encode(sample, addSpecialTokens: false), try gguf.encode(sample, addSpecialTokens: false))
        XCTAssertEqual(try folder.encode(sample, addSpecialTokens: true), try gguf.encode(sample, addSpecialTokens: true))
        XCTAssertNil(folder.chatTemplateSource)
        XCTAssertNotNil(gguf.chatTemplateSource)
        assertThrows(.io, containing: ["no tokenizer.json"]) { _ = try Tokenizer.load(path: Fixtures.path("gguf")) }
    }

    // MARK: - Streaming decode

    func testUTF8AssemblerMatchesStringDecoding() {
        var generator = SplitMix64(seed: 2026)
        // bytes that exercise every branch: ASCII, continuation, every lead class, the second-byte
        // limits (E0 A0, ED 9F/A0, F0 90, F4 8F/90), and bytes that never occur (C0, C1, F5..FF)
        let pool: [UInt8] = [0x41, 0x0A, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC,
                             0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF8, 0xFE, 0xFF]
        let valid = Array("aé東😀👨‍👩‍👧\u{10FFFF}\u{FFFD}".utf8)
        func pieces(_ bytes: [UInt8], cuts: [Int]) -> String {
            var assembler = UTF8Assembler()
            var out = ""
            var start = 0
            for cut in cuts.sorted() + [bytes.count] where cut >= start {
                out += assembler.append(bytes[start..<cut])
                start = cut
            }
            return out + assembler.finish()
        }
        var checked = 0
        for _ in 0..<1500 {
            let count = Int(generator.next() % 12)
            var bytes: [UInt8] = []
            for _ in 0..<count {
                switch generator.next() % 4 {
                case 0: bytes.append(valid[Int(generator.next() % UInt64(valid.count))])
                case 1: bytes += Array(valid[Int(generator.next() % UInt64(valid.count))...].prefix(4))
                default: bytes.append(pool[Int(generator.next() % UInt64(pool.count))])
                }
            }
            let expected = String(decoding: bytes, as: UTF8.self)
            // every single split point, one byte at a time, and random multi-way splits
            for cut in 0...bytes.count {
                XCTAssertEqual(pieces(bytes, cuts: [cut]), expected, "\(bytes) cut at \(cut)")
            }
            XCTAssertEqual(pieces(bytes, cuts: Array(0...bytes.count)), expected, "\(bytes) byte by byte")
            let random = (0..<3).map { _ in Int(generator.next() % UInt64(bytes.count + 1)) }
            XCTAssertEqual(pieces(bytes, cuts: random), expected, "\(bytes) cut at \(random)")
            checked += 1
        }
        XCTAssertEqual(checked, 1500)
        // a complete character comes out with its last byte; an incomplete one is held
        var assembler = UTF8Assembler()
        XCTAssertEqual(assembler.append([0xF0, 0x9F]), "")
        XCTAssertTrue(assembler.isHoldingBytes)
        XCTAssertEqual(assembler.append([0x98]), "")
        XCTAssertEqual(assembler.append([0x80, 0x41]), "😀A")
        XCTAssertFalse(assembler.isHoldingBytes)
        XCTAssertEqual(assembler.append([0xE6, 0x9D]), "")
        XCTAssertEqual(assembler.finish(), "\u{FFFD}")
        XCTAssertEqual(assembler.finish(), "")
        // a byte that cannot continue the held prefix releases it at once
        XCTAssertEqual(assembler.append([0xE0, 0x80]), "\u{FFFD}\u{FFFD}")
    }

    func testTokenTextStreamEqualsDecode() throws {
        let tokenizer = try Tokenizer(directory: Fixtures.path("tokenizers", "llama3"))
        let texts = ["😀 東京は日本の首都です。👨‍👩‍👧‍👦 family 🇫🇷🇩🇪 👍🏽", "Grüße <|eot_id|> 한국어 ❤️ x² ٣٤٥",
                     "<|begin_of_text|>mix 🎉🎉🎉 loramixer\n\t東"]
        for text in texts {
            let ids = try tokenizer.encode(text, addSpecialTokens: true)
            for skip in [false, true] {
                var stream = TokenTextStream(tokenizer: tokenizer, skipSpecialTokens: skip)
                var pieces: [String] = []
                for id in ids { pieces.append(stream.append(id)) }
                pieces.append(stream.finish())
                XCTAssertEqual(pieces.joined(), tokenizer.decode(ids, skipSpecialTokens: skip), "\(text) skip=\(skip)")
                XCTAssertFalse(pieces.joined().contains("\u{FFFD}"), "valid text never shows a cut character")
                XCTAssertTrue(pieces.contains(""), "some token ends inside a character of \(text)")
            }
        }
        // an unfinished character at the end comes out as U+FFFD, as decode gives it; unknown ids add nothing
        let emoji = try tokenizer.encode("😀", addSpecialTokens: false)
        XCTAssertGreaterThan(emoji.count, 1)
        var stream = TokenTextStream(tokenizer: tokenizer, skipSpecialTokens: false)
        XCTAssertEqual(stream.append(emoji[0]), "")
        XCTAssertEqual(stream.append(-1), "")
        XCTAssertEqual(stream.finish(), tokenizer.decode([emoji[0]], skipSpecialTokens: false))
    }

    // MARK: - Bundled model

    private static let models: String = {
        let fixtures = URL(fileURLWithPath: Fixtures.root)
        return fixtures.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models").path
    }()

    func testBundledModelTokenizerAndTextGeneration() throws {
        let model = try LanguageModel(directory: Self.models + "/tiny-llama")
        XCTAssertTrue(model.hasTokenizer)
        let tokenizer = try model.tokenizer()
        XCTAssertTrue(try model.tokenizer() === tokenizer, "read once")
        let prompt = try tokenizer.encode("12+30=", addSpecialTokens: true)
        XCTAssertEqual(prompt, Array("12+30=".utf8).map(Int32.init))
        XCTAssertEqual(tokenizer.decode(prompt, skipSpecialTokens: true), "12+30=")
        XCTAssertEqual(tokenizer.specialTokens.endOfTurn, [10])
        XCTAssertEqual(try tokenizer.applyChatTemplate(messages: Tokenizer.messages([("user", "12+30="), ("assistant", "42")]),
                                                       addGenerationPrompt: true), "12+30=42\n")

        let mixer = Mixer(model: model)
        for name in ["math", "strings", "lookup"] {
            _ = try mixer.addPEFT(name: name, directory: Self.models + "/experts/" + name)
        }
        try mixer.loadRouter(path: Self.models + "/router.safetensors")
        let session = try mixer.makeSession()
        var pieces: [String] = []
        let result = try session.generateText(prompt: prompt, tokenizer: tokenizer, options: .init(maxTokens: 8)) { piece in
            pieces.append(piece)
            return true
        }
        XCTAssertEqual(result.text, "42")
        XCTAssertEqual(result.stopReason, .stopToken)
        XCTAssertEqual(result.tokens, [52, 50])
        XCTAssertEqual(pieces.joined(), "42")
        // without the end-of-turn stop it runs to maxTokens, through the newline
        let free = try mixer.makeSession().generateText(prompt: prompt, tokenizer: tokenizer, options: .init(maxTokens: 3),
                                                        stopAtEndOfTurn: false)
        XCTAssertEqual(free.stopReason, .maxTokens)
        XCTAssertEqual(free.tokens.count, 3)
        XCTAssertTrue(free.text.hasPrefix("42\n"), free.text)
        // the caller can stop it
        let stopped = try mixer.makeSession().generateText(prompt: prompt, tokenizer: tokenizer, options: .init(maxTokens: 8)) { _ in false }
        XCTAssertEqual(stopped.stopReason, .stoppedByCaller)
        XCTAssertEqual(stopped.text, "4")
    }

    func testModelWithoutTokenizerIsNotFound() throws {
        let model = try LanguageModel(directory: Fixtures.path("llama_f32"))
        XCTAssertFalse(model.hasTokenizer)
        assertThrows(.notFound, containing: ["llama_f32", "no tokenizer.json"]) { _ = try model.tokenizer() }
    }
}
