import XCTest
@testable import LoRAMixer

final class JSONParserTests: XCTestCase {
    private func parse(_ text: String) throws -> JSONValue {
        try JSONParser.parse(text, context: "test.json")
    }

    /// Asserts `text` is refused with a format error that names the context and contains `reason`.
    private func assertRefused(_ text: String, _ reason: String, line: UInt = #line) {
        assertRefused(Array(text.utf8), reason, line: line)
    }

    private func assertRefused(_ bytes: [UInt8], _ reason: String, line: UInt = #line) {
        XCTAssertThrowsError(try JSONParser.parse(bytes, context: "test.json"), line: line) { error in
            guard let error = error as? LoRAMixerError else { return XCTFail("wrong error type \(error)", line: line) }
            XCTAssertEqual(error.kind, .format, line: line)
            XCTAssertTrue(error.message.hasPrefix("test.json: invalid JSON at byte "), error.message, line: line)
            XCTAssertTrue(error.message.contains(reason), "'\(error.message)' lacks '\(reason)'", line: line)
        }
    }

    func testScalars() throws {
        XCTAssertEqual(try parse("null"), .null)
        XCTAssertEqual(try parse("true"), .bool(true))
        XCTAssertEqual(try parse(" false "), .bool(false))
        XCTAssertEqual(try parse("-12.5e+3"), .number("-12.5e+3"))
        XCTAssertEqual(try parse("\"hi\""), .string("hi"))
        XCTAssertEqual(try parse("\"\""), .string(""))
    }

    func testContainersKeepOrder() throws {
        let value = try parse(" {\"b\" : [1, {\"x\": null}, []],\n\t\"a\": {}, \"c\":\r\"é\"} ")
        let object = try XCTUnwrap(value.object)
        XCTAssertEqual(object.keys, ["b", "a", "c"])
        XCTAssertEqual(object["b"], .array([.number("1"), .object(["x": .null]), .array([])]))
        XCTAssertEqual(object["a"], .object(JSONObject()))
        XCTAssertEqual(object["c"]?.string, "é")
        XCTAssertNil(object["missing"])
    }

    func testAccessors() throws {
        XCTAssertEqual(try parse("9223372036854775807").int, Int.max)
        XCTAssertEqual(try parse("-9223372036854775808").int, Int.min)
        XCTAssertEqual(try parse("-0").int, 0)
        XCTAssertNil(try parse("9223372036854775808").int)
        XCTAssertNil(try parse("1.5").int)
        XCTAssertNil(try parse("1.0").int)
        XCTAssertNil(try parse("1e3").int)
        XCTAssertEqual(try parse("1e3").double, 1000)
        XCTAssertEqual(try parse("-2.5E-1").double, -0.25)
        XCTAssertNil(try parse("\"1\"").int)
        XCTAssertEqual(try parse("true").bool, true)
        XCTAssertNil(try parse("null").string)
        XCTAssertEqual(try parse("[1]").array?.count, 1)
        XCTAssertEqual(try parse("[1]").kindName, "array")
    }

    func testBigIntegersStayExact() throws {
        let literal = "123456789012345678901234567890"
        XCTAssertEqual(try parse("[\(literal)]").array?.first, .number(literal))
        XCTAssertEqual(try parse("18446744073709551615").serialized(), "18446744073709551615")
    }

    func testValidNumbers() throws {
        for text in ["0", "-0", "7", "-7", "10", "0.5", "-0.0", "1e5", "1E+5", "1e-5", "0e0", "12.34e56"] {
            XCTAssertEqual(try parse(text), .number(text), text)
        }
    }

    func testInvalidNumbers() {
        assertRefused("01", "leading zero")
        assertRefused("-01", "leading zero")
        assertRefused("+1", "expected a value")
        assertRefused(".5", "expected a value")
        assertRefused("1.", "expected a digit after the decimal point")
        assertRefused("1.e5", "expected a digit after the decimal point")
        assertRefused("1e", "expected a digit in the exponent")
        assertRefused("1e+", "expected a digit in the exponent")
        assertRefused("-", "expected a digit")
        assertRefused("- 1", "expected a digit")
        assertRefused("NaN", "expected a value")
        assertRefused("Infinity", "expected a value")
        assertRefused("-Infinity", "expected a digit")
        assertRefused("0x10", "unexpected 'x' after the JSON value")
        assertRefused("1.5.", "unexpected '.' after the JSON value")
    }

    func testEscapes() throws {
        XCTAssertEqual(try parse(#""a\"b\\c\/d\be\ff\ng\rh\ti""#), .string("a\"b\\c/d\u{08}e\u{0C}f\ng\rh\ti"))
        XCTAssertEqual(try parse(#""\u0041\u00e9\u20AC\u0000""#), .string("Aé€\u{0}"))
        XCTAssertEqual(try parse(#""x\ud83d\ude00y""#), .string("x😀y"))
        XCTAssertEqual(try parse(#""\uDBFF\uDFFF""#), .string("\u{10FFFF}"))
    }

    func testBadEscapes() {
        assertRefused(#""\x""#, "invalid escape '\\x'")
        assertRefused(#""\'""#, "invalid escape")
        assertRefused(#""\u12""#, "expected 4 hex digits")
        assertRefused(#""\uZZZZ""#, "expected 4 hex digits")
        assertRefused(#""\ud83d""#, "high surrogate not followed")
        assertRefused(#""\ud83dx""#, "high surrogate not followed")
        assertRefused(#""\ud83d\u0041""#, "not a low surrogate")
        assertRefused(#""\ud83d\ud83d""#, "not a low surrogate")
        assertRefused(#""\ude00""#, "lone low surrogate")
        assertRefused("\"a\\", "unterminated string")
    }

    func testStringsRefuseControlCharactersAndUnterminated() {
        assertRefused("\"a\nb\"", "unescaped control character 0xA")
        assertRefused("\"a\tb\"", "unescaped control character 0x9")
        assertRefused("\"abc", "unterminated string")
        assertRefused("\"", "unterminated string")
    }

    func testInvalidUTF8() throws {
        XCTAssertEqual(try JSONParser.parse([0x22, 0xF0, 0x9F, 0x98, 0x80, 0x22], context: "t"), .string("😀"))
        XCTAssertEqual(try JSONParser.parse([0x22, 0x5C, 0x6E, 0xC3, 0xA9, 0x22], context: "t"), .string("\né"))
        assertRefused([0x22, 0xC3, 0x28, 0x22], "invalid UTF-8 sequence")          // bad continuation
        assertRefused([0x22, 0xC0, 0xAF, 0x22], "invalid UTF-8 lead byte 0xC0")     // overlong
        assertRefused([0x22, 0xE0, 0x80, 0xAF, 0x22], "invalid UTF-8 sequence")    // overlong 3-byte
        assertRefused([0x22, 0xED, 0xA0, 0x80, 0x22], "invalid UTF-8 sequence")    // encoded surrogate
        assertRefused([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], "invalid UTF-8 sequence") // above U+10FFFF
        assertRefused([0x22, 0x80, 0x22], "invalid UTF-8 lead byte 0x80")           // stray continuation
        assertRefused([0x22, 0xE2, 0x82], "invalid UTF-8 sequence")                 // truncated at end
        assertRefused([0x22, 0x5C, 0x6E, 0xFF, 0x22], "invalid UTF-8 lead byte 0xFF") // after an escape
        assertRefused([0xFF], "expected a value, found byte 0xFF")                  // outside a string
        assertRefused([0xEF, 0xBB, 0xBF, 0x31], "expected a value")                 // BOM
    }

    func testDuplicateKeysRefused() {
        assertRefused(#"{"a": 1, "b": 2, "a": 3}"#, "duplicate key \"a\"")
        assertRefused(#"{"x": {"k": 1, "k": 1}}"#, "duplicate key \"k\"")
        // Escaped spellings of the same key are the same key.
        assertRefused(#"{"a": 1, "\u0061": 2}"#, "duplicate key \"a\"")
        assertRefused(#"{"\u00e9": 1, "é": 2}"#, "duplicate key \"é\"")
    }

    /// Keys are compared by scalars, as JSON defines: "é" and "e\u{301}" are equal Swift
    /// Strings but different keys (a SentencePiece vocabulary may hold both).
    func testCanonicallyEquivalentKeysAreDistinct() throws {
        let object = try XCTUnwrap(parse(#"{"\u00e9": 1, "e\u0301": 2}"#).object)
        XCTAssertEqual(object.count, 2)
        XCTAssertEqual(object["\u{E9}"], .number("1"))
        XCTAssertEqual(object["e\u{301}"], .number("2"))
        var copy = object
        copy["e\u{301}"] = nil
        XCTAssertEqual(copy.keys.map { Array($0.unicodeScalars) }, [["\u{E9}"]])
        XCTAssertEqual(copy["\u{E9}"], .number("1"))
    }

    /// Large objects (a tokenizer's vocabulary) are indexed in one pass after parsing; they must
    /// answer, refuse duplicates and change exactly as small ones do.
    func testLargeObjectsIndexedAfterParsing() throws {
        let keys = (0..<200).map { "k\($0)" } + ["é", "Ġthe", "a-key-longer-than-sixteen-bytes-\u{0100}"]
        let text = "{" + keys.enumerated().map { "\"\($1)\": \($0)" }.joined(separator: ", ") + "}"
        var object = try XCTUnwrap(parse(text).object)
        for (index, key) in keys.enumerated() { XCTAssertEqual(object[key]?.int, index, key) }
        XCTAssertNil(object["k200"])
        XCTAssertNil(object["a-key-longer-than-sixteen-bytes-"])
        XCTAssertNil(object["e\u{301}"])  // keys compare by scalars: not "é"
        object["k5"] = nil
        object["new"] = .bool(true)
        XCTAssertNil(object["k5"])
        XCTAssertEqual(object["k6"]?.int, 6)
        XCTAssertEqual(object["new"], .bool(true))
        XCTAssertEqual(object.count, keys.count)
        XCTAssertEqual(object.keys.last, "new")
        // a duplicate, also one written with an escape, and the offset of the repeated key
        assertRefused("{" + keys.map { "\"\($0)\": 1, " }.joined() + #""k7": 2}"#, "duplicate key \"k7\"")
        assertRefused("{" + keys.map { "\"\($0)\": 1, " }.joined() + #""\u00e9": 2}"#, "duplicate key \"é\"")
        // a duplicate before a syntax error is the error reported, as in small objects
        assertRefused("{" + keys.map { "\"\($0)\": 1, " }.joined() + #""k1": 2, "x" 3}"#, "duplicate key \"k1\"")
        assertRefused(#"{"a": 1, "a": 2, "b" 3}"#, "duplicate key \"a\"")
    }

    func testDuplicateKeyErrorPointsAtTheKey() {
        XCTAssertThrowsError(try parse(#"{"a":1,"a":2}"#)) { error in
            XCTAssertEqual((error as? LoRAMixerError)?.message, "test.json: invalid JSON at byte 7: duplicate key \"a\"")
        }
    }

    func testDepthLimit() throws {
        let limit = JSONParser.maximumDepth
        let deepest = String(repeating: "[", count: limit) + String(repeating: "]", count: limit)
        XCTAssertNoThrow(try parse(deepest))
        assertRefused("[" + deepest + "]", "nesting deeper than 256 levels")
        let objects = String(repeating: "{\"k\":", count: limit) + "1" + String(repeating: "}", count: limit)
        XCTAssertNoThrow(try parse(objects))
        assertRefused("[" + objects + "]", "nesting deeper than 256 levels")
        assertRefused(String(repeating: "[", count: 100_000), "nesting deeper")
    }

    func testStructuralErrors() {
        assertRefused("", "expected a value, found end of input")
        assertRefused("   ", "expected a value, found end of input")
        assertRefused("[1,]", "expected a value, found ']'")
        assertRefused("[1 2]", "expected ',' or ']' in an array, found '2'")
        assertRefused("[1", "expected ',' or ']' in an array, found end of input")
        assertRefused(#"{"a":1,}"#, "expected a string key, found '}'")
        assertRefused(#"{"a" 1}"#, "expected ':' after an object key, found '1'")
        assertRefused(#"{1:2}"#, "expected a string key, found '1'")
        assertRefused(#"{'a':1}"#, "expected a string key, found '''")
        assertRefused(#"{"a":1"#, "expected ',' or '}' in an object")
        assertRefused("tru", "expected 'true'")
        assertRefused("nul", "expected 'null'")
        assertRefused("[/* */]", "expected a value, found '/'")
        assertRefused("\u{0B}1", "expected a value, found byte 0xB")
    }

    func testTrailingGarbage() {
        assertRefused("{} x", "unexpected 'x' after the JSON value")
        assertRefused("1 2", "unexpected '2' after the JSON value")
        assertRefused("[]]", "unexpected ']' after the JSON value")
        assertRefused("{}\u{0}", "unexpected byte 0x0 after the JSON value")
        XCTAssertThrowsError(try parse("true false")) { error in
            XCTAssertEqual((error as? LoRAMixerError)?.message, "test.json: invalid JSON at byte 5: unexpected 'f' after the JSON value")
        }
    }

    func testSerialization() throws {
        var object: JSONObject = ["name": .string("a\"b\\c\n\u{1}é😀"), "n": JSONValue(42)]
        object["list"] = .array([.null, .bool(true), JSONValue(-0.25), JSONValue(Double.nan)])
        object["empty"] = .object(JSONObject())
        let text = JSONValue.object(object).serialized()
        XCTAssertEqual(text, #"{"name":"a\"b\\c\n\u0001é😀","n":42,"list":[null,true,-0.25,null],"empty":{}}"#)
        XCTAssertEqual(try parse(text), .object(object))
        XCTAssertEqual(JSONValue.string("\u{08}\u{0C}\r\t\u{1F}").serialized(), #""\b\f\r\t\u001F""#)
    }

    func testObjectEditingAndEquality() {
        var object: JSONObject = ["a": JSONValue(1), "b": JSONValue(2), "c": JSONValue(3)]
        object["b"] = nil
        XCTAssertEqual(object.keys, ["a", "c"])
        XCTAssertEqual(object["c"], JSONValue(3))
        object["a"] = .string("x")
        XCTAssertEqual(object.keys, ["a", "c"])
        object["d"] = .null
        XCTAssertEqual(object.keys, ["a", "c", "d"])
        XCTAssertEqual(object, ["d": .null, "c": JSONValue(3), "a": .string("x")])
        XCTAssertNotEqual(object, ["a": .string("x"), "c": JSONValue(3)])
    }
}
