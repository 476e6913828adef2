import Foundation
import XCTest
@testable import LoRAMixer

/// Training text through a tokenizer (TrainingExample+Tokenizer.swift): the bundled byte-level
/// tokenizer gives the same ids as the UTF-8 bytes, and `messages` put the loss on every assistant
/// message, its end-of-turn text included.
final class TrainingExampleTokenizerTests: XCTestCase {
    /// models/tiny-llama: Fixtures.root is Tests/Fixtures.
    private let model = URL(fileURLWithPath: Fixtures.root).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("models/tiny-llama").path

    private func write(_ lines: [String]) throws -> String {
        let path = NSTemporaryDirectory() + "lmx-examples-\(UInt64.random(in: 0...UInt64.max)).jsonl"
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testTheBundledTokenizerGivesTheBytes() throws {
        let path = try write([#"{"prompt": "12+30=", "completion": "42\n", "task": "math"}"#, #"{"text": "héllo"}"#])
        let tokenizer = try Tokenizer(directory: model)
        XCTAssertEqual(try TrainingExample.load(path: path, vocabSize: 256, maxLength: 256, tokenizer: tokenizer),
                       try TrainingExample.load(path: path, vocabSize: 256, maxLength: 256))
        let language = try LanguageModel(directory: model)
        XCTAssertEqual(try TrainingExample.load(path: path, model: language)[1].tokens, "héllo".utf8.map { Int32($0) })
    }

    func testMessagesTrainOnEveryAssistantMessage() throws {
        let tokenizer = try Tokenizer(directory: model)
        let line = #"{"messages": [{"role": "user", "content": "1+1="}, {"role": "assistant", "content": "2"}, "#
            + #"{"role": "user", "content": "2+2="}, {"role": "assistant", "content": "4"}]}"#
        let examples = try TrainingExample.load(path: try write([line]), vocabSize: 256, maxLength: 256, tokenizer: tokenizer)
        // This template: the user's text as it is, each reply followed by "\n".
        XCTAssertEqual(examples[0].tokens, "1+1=2\n2+2=4\n".utf8.map { Int32($0) })
        XCTAssertEqual(examples[0].targets, [false, false, false, false, true, true, false, false, false, false, true, true])
        XCTAssertEqual(examples[0].promptLength, 4)
        assertThrows(.invalidArgument, containing: [":1", "tokenizer"]) {
            _ = try TrainingExample.load(path: try self.write([line]), vocabSize: 256, maxLength: 256)
        }
        assertThrows(.invalidArgument, containing: ["no assistant message"]) {
            _ = try TrainingExample.load(path: try self.write([#"{"messages": [{"role": "user", "content": "a"}]}"#]),
                                         vocabSize: 256, maxLength: 256, tokenizer: tokenizer)
        }
        assertThrows(.format, containing: ["not both"]) {
            _ = try TrainingExample.load(path: try self.write([#"{"messages": [], "text": "a"}"#]),
                                         vocabSize: 256, maxLength: 256, tokenizer: tokenizer)
        }
    }
}
