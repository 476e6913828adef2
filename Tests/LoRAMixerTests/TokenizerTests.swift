import Foundation
import XCTest
@testable import LoRAMixer

/// Checks the tokenizer against the ids and strings Hugging Face `tokenizers` produced for the
/// fixtures written by tools/make_tokenizer_fixtures.py.
final class TokenizerTests: XCTestCase {
    static let byteLevelNames = ["gpt2", "llama3", "qwen2", "prefix_digits", "qwen2_nfc"]
    static let sentencePieceNames = ["llama2_spm", "mistral_metaspace", "spm_split"]
    static let names = byteLevelNames + sentencePieceNames

    private func folder(_ name: String) -> String { Fixtures.path("tokenizers", name) }

    private func cases(_ name: String) throws -> JSONObject {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tokenizers", name, "cases.json"))))
        return try XCTUnwrap(JSONParser.parse(bytes, context: "cases.json").object)
    }

    private func ids(_ value: JSONValue?) throws -> [Int32] {
        try XCTUnwrap(value?.array).map { Int32(try XCTUnwrap($0.int)) }
    }

    func testEveryCaseMatchesTokenizers() throws {
        var checked = 0
        for name in Self.names {
            let tokenizer = try Tokenizer(directory: folder(name))
            let document = try cases(name)
            XCTAssertEqual(tokenizer.vocabularySize, document["vocab_size"]?.int, name)
            for entry in try XCTUnwrap(document["cases"]?.array) {
                let object = try XCTUnwrap(entry.object)
                let text = try XCTUnwrap(object["text"]?.string)
                let plain = try ids(object["ids"])
                let special = try ids(object["ids_special"])
                XCTAssertEqual(try tokenizer.encode(text, addSpecialTokens: false), plain, "\(name): \(text.debugDescription)")
                XCTAssertEqual(try tokenizer.encode(text, addSpecialTokens: true), special, "\(name): \(text.debugDescription) with special tokens")
                XCTAssertEqual(tokenizer.decode(special, skipSpecialTokens: false), object["decoded"]?.string, "\(name): decode \(text.debugDescription)")
                XCTAssertEqual(tokenizer.decode(special, skipSpecialTokens: true), object["decoded_skip"]?.string, "\(name): decode skipping specials \(text.debugDescription)")
                checked += 1
            }
            for entry in try XCTUnwrap(document["partial"]?.array) {
                let object = try XCTUnwrap(entry.object)
                XCTAssertEqual(tokenizer.decode(try ids(object["ids"]), skipSpecialTokens: false), object["decoded"]?.string, "\(name): partial decode")
                checked += 1
            }
            for entry in document["decodes"]?.array ?? [] {
                let object = try XCTUnwrap(entry.object)
                let list = try ids(object["ids"])
                XCTAssertEqual(tokenizer.decode(list, skipSpecialTokens: false), object["decoded"]?.string, "\(name): decode \(list)")
                XCTAssertEqual(tokenizer.decode(list, skipSpecialTokens: true), object["decoded_skip"]?.string, "\(name): decode skipping specials \(list)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 8 * 176 + 3 * 60)
    }

    func testRoundTripAndTokenBytes() throws {
        let text = "Grüße, 東京 👨‍👩‍👧‍👦!\n\tdef f(x): return 12345  \n"
        for name in Self.byteLevelNames {
            let tokenizer = try Tokenizer(directory: folder(name))
            let ids = try tokenizer.encode(text, addSpecialTokens: true)
            // prefix_digits puts a space before every piece (each digit too), so it does not round-trip
            if name != "prefix_digits" { XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), text, name) }
            let joined = ids.flatMap { tokenizer.tokenToBytes($0) ?? [] }
            XCTAssertEqual(joined, tokenizer.decodeBytes(ids, skipSpecialTokens: false), name)
            XCTAssertNil(tokenizer.tokenToBytes(-1))
            XCTAssertNil(tokenizer.tokenToBytes(Int32(tokenizer.vocabularySize + 10)))
            XCTAssertTrue(tokenizer.specialTokenIDs.contains(0), name)
        }
    }

    /// SentencePiece-style: `decode` drops the space the normalizer or Metaspace put before the
    /// text; `tokenToBytes` keeps each "▁" as a space (a token's bytes mid-text), so the pieces
    /// join to the text after BOS, or to a space and the text without BOS.
    func testSentencePieceRoundTripAndTokenBytes() throws {
        let full = "Grüße, 東京 👨‍👩‍👧‍👦!\n\tdef f(x): return 12345  \n"
        let noEmoji = "Grüße, 東京!\n\tdef f(x):  return 12345  \n"
        for (name, text) in [("llama2_spm", full), ("mistral_metaspace", noEmoji), ("spm_split", "def f(x):  return 12345  ")] {
            let tokenizer = try Tokenizer(directory: folder(name))
            let special = try tokenizer.encode(text, addSpecialTokens: true)
            let plain = try tokenizer.encode(text, addSpecialTokens: false)
            XCTAssertEqual(special, [1] + plain, name)
            XCTAssertEqual(tokenizer.decode(special, skipSpecialTokens: true), text, name)
            XCTAssertEqual(tokenizer.decode(special, skipSpecialTokens: false), "<s> " + text, name)
            XCTAssertEqual(tokenizer.decodeBytes(plain, skipSpecialTokens: false), Array(text.utf8), name)
            XCTAssertEqual(special.flatMap { tokenizer.tokenToBytes($0) ?? [] }, tokenizer.decodeBytes(special, skipSpecialTokens: false), name)
            XCTAssertEqual(plain.flatMap { tokenizer.tokenToBytes($0) ?? [] }, Array((" " + text).utf8), name)
        }
        let tokenizer = try Tokenizer(directory: folder("llama2_spm"))
        let space = try XCTUnwrap(tokenizer.model.vocabulary[ScalarString("▁")])
        XCTAssertEqual(tokenizer.tokenToBytes(space), [0x20])
        XCTAssertEqual(tokenizer.decode([space], skipSpecialTokens: false), "")
        XCTAssertEqual(tokenizer.token(space), "▁")
        // a character cut between byte tokens: raw bytes, while `decode` gives one U+FFFD per byte
        let emoji = try tokenizer.encode("😀", addSpecialTokens: false)
        XCTAssertEqual(emoji.map { tokenizer.token($0) ?? "?" }, ["▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"])
        XCTAssertEqual(tokenizer.decodeBytes(Array(emoji[..<3]), skipSpecialTokens: false), [0xF0, 0x9F])
        XCTAssertEqual(tokenizer.decode(Array(emoji[..<3]), skipSpecialTokens: false), "\u{FFFD}\u{FFFD}")
        XCTAssertEqual(tokenizer.tokenToBytes(emoji[1]), [0xF0])
        XCTAssertEqual(emoji.flatMap { tokenizer.tokenToBytes($0) ?? [] }, Array(" 😀".utf8))
    }

    /// Vocabulary lookups compare scalars: "é" and "e\u{301}" are different tokens, though
    /// equal Swift Strings.
    func testVocabularyIsScalarExact() throws {
        let json = #"{"model": {"type": "BPE", "vocab": {"e": 0, "\u0301": 1, "\u00e9": 2, "e\u0301": 3, "x": 4}, "merges": [["e", "\u0301"]]}}"#
        let tokenizer = try Tokenizer(json: Array(json.utf8))
        XCTAssertEqual(try tokenizer.encode("\u{E9}x", addSpecialTokens: false), [2, 4])
        XCTAssertEqual(try tokenizer.encode("e\u{301}x", addSpecialTokens: false), [3, 4])
        XCTAssertEqual(tokenizer.vocabularySize, 5)
        XCTAssertEqual(tokenizer.token(3).map { Array($0.unicodeScalars) }, ["e", "\u{301}"])
        XCTAssertEqual(tokenizer.decodeBytes([2, 3], skipSpecialTokens: false), [0xC3, 0xA9, 0x20, 0x65, 0xCC, 0x81])
    }

    /// Older files write each merge as one string "a b"; both forms give the same tokenizer.
    func testMergesAsStrings() throws {
        var json = try document()
        var model = try XCTUnwrap(json["model"]?.object)
        let merges = try XCTUnwrap(model["merges"]?.array)
        model["merges"] = .array(try merges.map { pair in
            let parts = try XCTUnwrap(pair.array).compactMap(\.string)
            return .string(parts.joined(separator: " "))
        })
        json["model"] = .object(model)
        let fromStrings = try Tokenizer(json: Array(JSONValue.object(json).serialized().utf8))
        let fromArrays = try Tokenizer(directory: folder("llama3"))
        for entry in try XCTUnwrap(cases("llama3")["cases"]?.array) {
            let text = try XCTUnwrap(entry.object?["text"]?.string)
            XCTAssertEqual(try fromStrings.encode(text, addSpecialTokens: true), try fromArrays.encode(text, addSpecialTokens: true))
        }
    }

    // MARK: - Bad input

    private func document() throws -> JSONObject {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: folder("llama3") + "/tokenizer.json")))
        return try XCTUnwrap(JSONParser.parse(bytes, context: "tokenizer.json").object)
    }

    private func assertRefused(_ document: JSONObject, _ expected: String..., line: UInt = #line) {
        let bytes = Array(JSONValue.object(document).serialized().utf8)
        XCTAssertThrowsError(try Tokenizer(json: bytes, context: "t.json"), line: line) { error in
            guard let error = error as? LoRAMixerError else { return XCTFail("wrong error type \(error)", line: line) }
            XCTAssertEqual(error.kind, .format, line: line)
            for part in expected {
                XCTAssertTrue(error.message.contains(part), "'\(error.message)' lacks '\(part)'", line: line)
            }
        }
    }

    func testRefusesUnsupportedModels() throws {
        for type in ["WordPiece", "Unigram", "WordLevel", "Mystery"] {
            var json = try document()
            var model = try XCTUnwrap(json["model"]?.object)
            model["type"] = .string(type)
            json["model"] = .object(model)
            assertRefused(json, "t.json", "model \(type)", "not supported")
        }
        var json = try document()
        var model = try XCTUnwrap(json["model"]?.object)
        model["unk_token"] = .string("<nope>")
        json["model"] = .object(model)
        assertRefused(json, "t.json: model (BPE): unk_token \"<nope>\" is not in the vocabulary")
    }

    func testRefusesMergeNamingUnknownToken() throws {
        for merge: JSONValue in [.string("Ġ zzzunknown"), .array([.string("zzzunknown"), .string("a")])] {
            var json = try document()
            var model = try XCTUnwrap(json["model"]?.object)
            var merges = try XCTUnwrap(model["merges"]?.array)
            merges.insert(merge, at: 3)
            model["merges"] = .array(merges)
            json["model"] = .object(model)
            assertRefused(json, "merge 3", "\"zzzunknown\"", "not in the vocabulary")
        }
        var json = try document()
        var model = try XCTUnwrap(json["model"]?.object)
        model["merges"] = .array([.string("a b c")])
        json["model"] = .object(model)
        assertRefused(json, "merge 0", "not two tokens")

        json = try document()
        model = try XCTUnwrap(json["model"]?.object)
        model["merges"] = .array([.array([.string("Ā"), .string("Ā")])])
        json["model"] = .object(model)
        assertRefused(json, "merge 0", "makes \"ĀĀ\", which is not in the vocabulary")
    }

    func testRefusesUnsupportedPreTokenizersNormalizersAndDecoders() throws {
        var json = try document()
        json["pre_tokenizer"] = .object(["type": .string("Split"), "pattern": .object(["Regex": .string(#"\w+|[^\w\s]+"#)]),
                                         "behavior": .string("Isolated"), "invert": .bool(false)])
        assertRefused(json, "pre_tokenizer Split", #"\w+|[^\w\s]+"#, "not supported")

        json = try document()
        json["pre_tokenizer"] = .object(["type": .string("Metaspace"), "replacement": .string("▁"), "prepend_scheme": .string("sometimes")])
        assertRefused(json, "t.json: pre_tokenizer Metaspace: prepend_scheme \"sometimes\" is not one of")

        // as `tokenizers`: add_prefix_space false contradicts the default scheme "always"
        json = try document()
        json["pre_tokenizer"] = .object(["type": .string("Metaspace"), "replacement": .string("▁"), "add_prefix_space": .bool(false)])
        assertRefused(json, "t.json: pre_tokenizer Metaspace: add_prefix_space false does not match prepend_scheme (always)")

        json = try document()
        json["pre_tokenizer"] = .object(["type": .string("Metaspace"), "replacement": .string("ab")])
        assertRefused(json, "t.json: pre_tokenizer Metaspace: `replacement` must be a string of one character")

        json = try document()
        json["pre_tokenizer"] = .object(["type": .string("Whitespace")])
        assertRefused(json, "pre_tokenizer Whitespace", "not supported")

        for type in ["NFKC", "NFD", "NFKD", "Lowercase", "BertNormalizer", "Strip", "StripAccents", "Precompiled"] {
            json = try document()
            json["normalizer"] = .object(["type": .string(type)])
            assertRefused(json, "t.json: normalizer \(type) is not supported (supported: NFC, Prepend, Replace, Sequence)")
            json["normalizer"] = .object(["type": .string("Sequence"), "normalizers": .array([.object(["type": .string("NFC")]), .object(["type": .string(type)])])])
            assertRefused(json, "t.json: normalizer \(type) is not supported")
        }

        let regex: JSONValue = .object(["type": .string("Replace"), "pattern": .object(["Regex": .string(" {2,}")]), "content": .string(" ")])
        json = try document()
        json["normalizer"] = regex
        assertRefused(json, #"t.json: normalizer Replace: pattern {"Regex":" {2,}"} is not supported (only a String pattern, no Regex)"#)
        json = try document()
        json["decoder"] = .object(["type": .string("Sequence"), "decoders": .array([regex])])
        assertRefused(json, #"t.json: decoder Replace: pattern {"Regex":" {2,}"} is not supported (only a String pattern, no Regex)"#)
        json = try document()
        json["normalizer"] = .object(["type": .string("Replace"), "pattern": .object(["String": .string("")]), "content": .string("x")])
        assertRefused(json, "t.json: normalizer Replace: the String pattern is empty")

        for type in ["WordPiece", "CTC", "BPEDecoder"] {
            json = try document()
            json["decoder"] = .object(["type": .string(type)])
            assertRefused(json, "t.json: decoder \(type) is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)")
        }
        json = try document()
        json["decoder"] = .object(["type": .string("Strip"), "content": .string(" "), "start": .init(-1), "stop": .init(0)])
        assertRefused(json, "t.json: decoder Strip: needs `content`")

        json = try document()
        json["post_processor"] = .object(["type": .string("BertProcessing")])
        assertRefused(json, "post_processor BertProcessing", "not supported")
    }

    func testRefusesMalformedJSON() throws {
        for text in ["", "{", "[1, 2]", "{\"model\": 3}", "{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}",
                     "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}"] {
            XCTAssertThrowsError(try Tokenizer(json: Array(text.utf8), context: "t.json"), text) { error in
                XCTAssertTrue((error as? LoRAMixerError)?.message.hasPrefix("t.json") == true, "\(error)")
            }
        }
        // ids need not be contiguous; a huge one is not a reason to allocate that much
        let sparse = #"{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}, "model": {"type": "BPE", "vocab": {"a": 2147483646, "b": 0, "ab": 7}, "merges": [["a", "b"]]}}"#
        let tokenizer = try Tokenizer(json: Array(sparse.utf8))
        XCTAssertEqual(try tokenizer.encode("abba", addSpecialTokens: true), [7, 0, 2147483646])
        XCTAssertEqual(tokenizer.decode([7, 0, 2147483646, 5], skipSpecialTokens: false), "ab b a")
        XCTAssertThrowsError(try Tokenizer(directory: "/nonexistent-folder")) { error in
            XCTAssertEqual("\(error)", "/nonexistent-folder: model folder does not exist (No such file or directory)")
        }
    }
}

extension TokenizerTests {
    /// The ASCII shortcuts of the character classes agree with the Unicode properties.
    func testASCIIClassesMatchProperties() {
        for value in UInt32(0)..<128 {
            let scalar = Unicode.Scalar(UInt8(value))
            let category = scalar.properties.generalCategory
            XCTAssertEqual(isLetter(scalar), [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter].contains(category), "\(value)")
            XCTAssertEqual(isNumber(scalar), [.decimalNumber, .letterNumber, .otherNumber].contains(category), "\(value)")
            XCTAssertEqual(isSpace(scalar), scalar.properties.isWhitespace, "\(value)")
        }
    }
}

extension TokenizerTests {
    /// One 200,000-letter word (Llama 3's pattern keeps a letter run whole): the merge loop is
    /// O(n log n), so this takes milliseconds, and it round-trips.
    func testLongWordIsFastAndRoundTrips() throws {
        let tokenizer = try Tokenizer(directory: folder("llama3"))
        var state: UInt32 = 12345
        var scalars = String.UnicodeScalarView()
        for _ in 0..<200_000 {
            state = state &* 1_103_515_245 &+ 12345
            scalars.append(Unicode.Scalar(UInt8(97 + (state >> 16) % 26)))
        }
        let text = String(scalars)
        let ids = try tokenizer.encode(text, addSpecialTokens: false)
        XCTAssertLessThan(ids.count, 200_000)
        XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: false), text)
    }
}
