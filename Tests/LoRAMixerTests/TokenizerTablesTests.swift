import Foundation
import XCTest
@testable import LoRAMixer

/// `Tokenizer(json:)` reads `model.vocab` and `model.merges` straight from the bytes
/// (`BPETableReader`); these tests hold it to what parsing the whole document into `JSONValue`s
/// and building the model from those gives: the same tokenizer, and for malformed input the
/// same error, message and byte offset included.
final class TokenizerTablesTests: XCTestCase {
    private enum Loaded {
        case tokenizer(Tokenizer)
        case refused(String)
    }

    private let byteLevel = #""pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}, "decoder": {"type": "ByteLevel"}"#

    /// A document whose model has these members (the text after `"type": "BPE"`).
    private func document(_ model: String) -> String {
        #"{\#(byteLevel), "model": {"type": "BPE", \#(model)}}"#
    }

    /// The tokenizer, or the error's text, by the bytes reader.
    private func direct(_ text: String) -> Loaded {
        do { return .tokenizer(try Tokenizer(json: Array(text.utf8), context: "t.json")) } catch { return .refused("\(error)") }
    }

    /// The tokenizer, or the error's text, through a whole `JSONValue` document.
    private func throughValues(_ text: String) -> Loaded {
        do {
            let document = try JSONParser.parse(Array(text.utf8), context: "t.json")
            return .tokenizer(try Tokenizer(document: document, context: "t.json", configuration: TokenizerConfiguration()))
        } catch {
            return .refused("\(error)")
        }
    }

    private func outcome(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    /// Both ways refuse the document with the same message, which contains `expected`.
    private func assertRefused(_ text: String, _ expected: String..., line: UInt = #line) {
        switch (direct(text), throughValues(text)) {
        case let (.refused(message), .refused(reference)):
            XCTAssertEqual(message, reference, text, line: line)
            for part in expected {
                XCTAssertTrue(message.contains(part), "'\(message)' lacks '\(part)'", line: line)
            }
        case let (first, second):
            XCTFail("\(text): \(first) / \(second)", line: line)
        }
    }

    /// Both ways accept the document and give the same tokenizer for `texts`.
    private func assertSame(_ text: String, _ texts: [String], line: UInt = #line) throws {
        guard case .tokenizer(let first) = direct(text), case .tokenizer(let second) = throughValues(text) else {
            return XCTFail("\(direct(text)) / \(throughValues(text))", line: line)
        }
        XCTAssertEqual(first.vocabularySize, second.vocabularySize, line: line)
        XCTAssertEqual(first.largestID, second.largestID, line: line)
        for text in texts {
            let ids = try first.encode(text, addSpecialTokens: false)
            XCTAssertEqual(ids, try second.encode(text, addSpecialTokens: false), text, line: line)
            XCTAssertEqual(first.decode(ids, skipSpecialTokens: false), second.decode(ids, skipSpecialTokens: false), line: line)
        }
        for id in Int32(-1)...Int32(12) { XCTAssertEqual(first.token(id), second.token(id), line: line) }
    }

    func testSameTokenizerAsThroughValues() throws {
        let texts = ["ab", "abba", "a b", "ba ab", "é", "xyz"]
        try assertSame(document(#""vocab": {"a": 0, "b": 1, "ab": 2, "ba": 3}, "merges": [["a", "b"], ["b", "a"]]"#), texts)
        try assertSame(document(#""vocab": {"a": 0, "b": 1, "ab": 2, "ba": 3}, "merges": ["a b", "b a"]"#), texts)
        // merges before the vocabulary, escapes, whitespace everywhere, "-0", ids sharing a value
        try assertSame(document("""
            "merges" : [ [ "\\u0061" , "b" ] ,
              "b\\u0020a" ] , "vocab" : { "\\u0061" : 0 , "b"
            : -0 , "ab" :2, "ba": 3, "Ã©": 3, "\\ud83d\\ude00": 7 }
            """), texts + ["😀"])
        try assertSame(document(#""vocab": {}, "merges": []"#), texts)
        try assertSame(document(#""vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"], ["a", "b"]]"#), texts)
        // the same tokens as the fixtures'
        for name in TokenizerTests.names {
            let text = try String(contentsOfFile: Fixtures.path("tokenizers", name, "tokenizer.json"), encoding: .utf8)
            try assertSame(text, ["Hello, world! 123 héllo  wörld\n\tdone 😀 日本語"])
        }
    }

    func testRefusesMalformedVocabularyAsBefore() {
        let merges = #""merges": []"#
        for id in [#""1""#, "1.5", "-1", "2147483647", "1e3", "null", "true", "[1]", #"{"x": 1}"#, "99999999999999999999", "-0.0"] {
            assertRefused(document(#""vocab": {"a": 0, "b": \#(id), "c": "x"}, \#(merges)"#),
                          "t.json: model (BPE): vocab entry \"b\" has id ", "expected a non-negative 32-bit integer")
        }
        assertRefused(document(#""vocab": {"a": 0, "b": 1, "a": 2}, \#(merges)"#), "invalid JSON at byte", #"duplicate key "a""#)
        assertRefused(document(#""vocab": {"a": 0, "b": 1, "\u0061": 2}, \#(merges)"#), #"duplicate key "a""#)
        // a repeated key before a syntax error is the error, one after it is not
        assertRefused(document(#""vocab": {"a": 0, "a": 1, "b" 2}, \#(merges)"#), #"duplicate key "a""#)
        assertRefused(document(#""vocab": {"a": 0, "b" 2, "a": 1}, \#(merges)"#), "expected ':' after an object key")
        // a repeated key is refused before a wrong id
        assertRefused(document(#""vocab": {"a": "x", "a": 1}, \#(merges)"#), #"duplicate key "a""#)
        // "é" and "e\u0301" are different keys
        XCTAssertNoThrow(try Tokenizer(json: Array(document(#""vocab": {"\u00e9": 0, "e\u0301": 1}, \#(merges)"#).utf8)))
        for (body, reason) in [
            (#"{"a": 0,}"#, "expected a string key"), (#"{"a": 0 "b": 1}"#, "',' or '}' in an object"), (#"{"a" 0}"#, "':' after an object key"),
            (#"{a: 0}"#, "expected a string key"), (#"{"a": 01}"#, "leading zero"), (#"{"a": -}"#, "expected a digit"),
            (#"{"a": 1.}"#, "after the decimal point"), (#"{"a": tru}"#, "expected 'true'"), (#"{"a\x": 0}"#, "invalid escape"),
            (#"{"\ud800": 0}"#, "high surrogate"), (#"{"a": 0"#, "',' or '}' in an object"), (#"{"ab"#, "expected ':' after an object key"),
        ] {
            assertRefused(document(#""vocab": \#(body), \#(merges)"#), "invalid JSON at byte", reason)
        }
        // invalid UTF-8 and control characters in a key (raw bytes: a String would repair them)
        for bad: [UInt8] in [[0xC3], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x01]] {
            let bytes = Array(document(#""vocab": {"a": 0, "b"#).dropLast(2).utf8) + bad + Array(#"": 1}, "merges": []}}"#.utf8)
            let first = outcome { _ = try Tokenizer(json: bytes, context: "t.json") }
            XCTAssertEqual(first, outcome { _ = try JSONParser.parse(bytes, context: "t.json") })
            XCTAssertTrue(first.hasPrefix("t.json: invalid JSON at byte 1"), first)
        }
        for vocab in ["[]", #""a""#, "null", "3"] {
            assertRefused(document(#""vocab": \#(vocab), \#(merges)"#), "t.json: model (BPE): `vocab` must be an object of token -> id, found")
        }
        assertRefused(document(merges), "t.json: model (BPE): `vocab` must be an object of token -> id, found nothing")
        // the model object's own keys are still checked for repeats
        assertRefused(document(#""vocab": {"a": 0}, "vocab": {"b": 0}, \#(merges)"#), #"duplicate key "vocab""#)
        assertRefused(document(#""vocab": {"a": 0}, \#(merges), "merges": []"#), #"duplicate key "merges""#)
    }

    func testRefusesMalformedMergesAsBefore() {
        let vocab = #""vocab": {"a": 0, "b": 1, "ab": 2, "c": 3}"#
        for (merges, expected) in [
            (#"[1]"#, #"merge 0 must be a string "a b" or an array ["a", "b"], found number"#),
            (#"[["a", "b"], null]"#, "merge 1 must be a string \"a b\" or an array [\"a\", \"b\"], found null"),
            (#"[{"a": "b"}]"#, "found object"),
            (#"[["a"]]"#, "merge 0 must be an array of two strings"), (#"[[]]"#, "merge 0 must be an array of two strings"),
            (#"[["a", "b", "c"]]"#, "merge 0 must be an array of two strings"), (#"[["a", 1]]"#, "merge 0 must be an array of two strings"),
            (#"[[["a"], "b"]]"#, "merge 0 must be an array of two strings"),
            (#"["ab"]"#, "merge 0 \"ab\" is not two tokens separated by one space"),
            (#"["a  b"]"#, "merge 0 \"a  b\" is not two tokens separated by one space"),
            (#"["a b c"]"#, "is not two tokens"), (#"["a b", "a\nb"]"#, #"merge 1 "a\nb" is not two tokens"#),
            (#"["a b", "a c"]"#, #"merge 1 ("a", "c") makes "ac", which is not in the vocabulary"#),
            (#"[["a", "z"]]"#, #"merge 0 ("a", "z") names "z", which is not in the vocabulary"#),
            (#"[["z", "y"]]"#, #"names "z""#), (#"["a "]"#, #"names "", which is not in the vocabulary"#),
            // the first bad merge is the one reported, whichever way it is bad
            (#"[["a", "z"], 7]"#, #"merge 0 ("a", "z") names "z""#), (#"[7, ["a", "z"]]"#, "merge 0 must be a string"),
            (#"[["a", "b"], ["c"], ["a", "z"]]"#, "merge 1 must be an array of two strings"),
            (#"[["a", "c"], "a"]"#, #"merge 0 ("a", "c") makes "ac""#),
        ] {
            assertRefused(document(#"\#(vocab), "merges": \#(merges)"#), "t.json: model (BPE): merge ", expected)
        }
        for (merges, reason) in [
            (#"[["a", "b"],]"#, "expected a value"), (#"[["a" "b"]]"#, "',' or ']' in an array"), (#"[["a", "b"]"#, "',' or ']' in an array"),
            (#"[["a", "b"] ["a", "b"]]"#, "',' or ']' in an array"), (#"[["a", "b",]]"#, "expected a value"), (#"["a b]"#, "unterminated string"),
            (#"[["a\q", "b"]]"#, "invalid escape"), (#"[[1, "b"], [}]"#, "expected a value"), (#"[7, [}]"#, "expected a value"),
            (#"[["a", "z"], [}]"#, "expected a value"),
        ] {
            assertRefused(document(#"\#(vocab), "merges": \#(merges)"#), "invalid JSON at byte", reason)
        }
        for merges in ["{}", #""a b""#, "null"] {
            assertRefused(document(#"\#(vocab), "merges": \#(merges)"#), "t.json: model (BPE): `merges` must be an array, found")
        }
        // nesting limits as anywhere else
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        assertRefused(document(#"\#(vocab), "merges": [\#(deep)]"#), "nesting deeper than")
        // a bad vocabulary is reported before bad merges, a JSON error before both
        assertRefused(document(#""vocab": {"a": -1}, "merges": [7]"#), "vocab entry \"a\" has id")
        assertRefused(document(#""vocab": {"a": -1}, "merges": [7, }"#), "invalid JSON at byte")
        assertRefused(document(#"\#(vocab), "merges": [7], "dropout": 0.5"#), "`dropout` = ")
    }
}
