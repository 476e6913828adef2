import Foundation
import XCTest
@testable import LoRAMixer

/// The chat template engine against transformers' apply_chat_template (fixtures written by
/// tools/make_chat_template_fixtures.py), plus the language pieces and bad input.
final class ChatTemplateTests: XCTestCase {
    private static let fixtureNames = ["llama3", "llama3_1", "qwen2_5", "mistral_v0_3", "smollm2", "phi3", "gemma"]

    private func render(_ template: String, _ messages: [JSONValue] = [], generation: Bool = false,
                        extra: [String: JSONValue] = [:]) throws -> String {
        try ChatTemplate(source: template).render(messages: messages, addGenerationPrompt: generation,
                                                  bosToken: "<s>", eosToken: "</s>", extra: extra)
    }

    private func assertError(_ template: String, _ messages: [JSONValue] = [], kind: LoRAMixerError.Kind = .format,
                             contains parts: [String], line: UInt = #line) {
        XCTAssertThrowsError(try render(template, messages), line: line) { error in
            guard let error = error as? LoRAMixerError else { return XCTFail("wrong error type \(error)", line: line) }
            XCTAssertEqual(error.kind, kind, error.message, line: line)
            for part in parts {
                XCTAssertTrue(error.message.contains(part), "'\(error.message)' lacks '\(part)'", line: line)
            }
        }
    }

    private static func message(_ role: String, _ content: String) -> JSONValue {
        .object(["role": .string(role), "content": .string(content)])
    }

    func testFixturesMatchApplyChatTemplate() throws {
        let root = Fixtures.path("chat_templates")
        var checked = 0
        for name in Self.fixtureNames {
            let data = try Data(contentsOf: URL(fileURLWithPath: (root as NSString).appendingPathComponent(name + ".json")))
            let document = try XCTUnwrap(try JSONParser.parse([UInt8](data), context: name).object)
            let template = try ChatTemplate(source: try XCTUnwrap(document["chat_template"]?.string))
            let bos = try XCTUnwrap(document["bos_token"]?.string)
            let eos = try XCTUnwrap(document["eos_token"]?.string)
            for caseValue in try XCTUnwrap(document["cases"]?.array) {
                let testCase = try XCTUnwrap(caseValue.object)
                let caseName = "\(name)/\(testCase["name"]?.string ?? "?")"
                var extra: [String: JSONValue] = [:]
                for (key, value) in testCase["extra"]?.object?.entries ?? [] { extra[key] = value }
                let result = Result {
                    try template.render(messages: try XCTUnwrap(testCase["messages"]?.array),
                                        addGenerationPrompt: testCase["add_generation_prompt"]?.bool ?? false,
                                        bosToken: bos, eosToken: eos, extra: extra)
                }
                if let expected = testCase["expected"]?.string {
                    switch result {
                    case .success(let text): XCTAssertEqual(text, expected, caseName)
                    case .failure(let error): XCTFail("\(caseName): \(error)")
                    }
                } else {
                    let message = try XCTUnwrap(testCase["error"]?.string)
                    switch result {
                    case .success(let text): XCTFail("\(caseName) rendered \(text) instead of raising \(message)")
                    case .failure(let error):
                        let error = try XCTUnwrap(error as? LoRAMixerError)
                        XCTAssertEqual(error.kind, .invalidArgument, caseName)
                        XCTAssertEqual(error.message, "chat template raised an exception: \(message)", caseName)
                    }
                }
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 100)
    }

    /// Random mixes of text and tags with every whitespace marker, against jinja2 as transformers
    /// configures it (fixture `whitespace.json`).
    func testWhitespaceFixtures() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("chat_templates", "whitespace.json")))
        let cases = try XCTUnwrap(try JSONParser.parse([UInt8](data), context: "whitespace.json").object?["cases"]?.array)
        XCTAssertGreaterThanOrEqual(cases.count, 100)
        for value in cases {
            let template = try XCTUnwrap(value.object?["template"]?.string)
            let expected = try XCTUnwrap(value.object?["expected"]?.string)
            XCTAssertEqual(try render(template), expected, template.debugDescription)
        }
    }

    /// Literals, operators, filters, tests, methods and loops against jinja2 (fixture
    /// `expressions.json`); a case jinja2 refuses must throw with the same reason.
    func testExpressionFixtures() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("chat_templates", "expressions.json")))
        let cases = try XCTUnwrap(try JSONParser.parse([UInt8](data), context: "expressions.json").object?["cases"]?.array)
        XCTAssertGreaterThanOrEqual(cases.count, 30)
        for value in cases {
            let template = try XCTUnwrap(value.object?["template"]?.string)
            if let expected = value.object?["expected"]?.string {
                XCTAssertEqual(try render(template), expected, template)
            } else {
                let reason = try XCTUnwrap(value.object?["error"]?.string).split(separator: ":", maxSplits: 1)[1].dropFirst()
                assertError(template, contains: [String(reason)])
            }
        }
    }

    func testWhitespaceControl() throws {
        XCTAssertEqual(try render("a  {{- 'b' -}}  c"), "abc")
        XCTAssertEqual(try render("a\n  {%- if true -%}\n  b  {%- endif %}\nc"), "abc")
        // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
        XCTAssertEqual(try render("{% if true %}\n    x\n    {% endif %}\ny\n"), "    x\ny")
        XCTAssertEqual(try render("  {%+ if true %}x{% endif %}"), "  x")
        XCTAssertEqual(try render("a {# note #}\nb"), "a b")
        XCTAssertEqual(try render("{{ 'x' }}\n{{ 'y' }}"), "x\ny")
        XCTAssertEqual(try render("line\r\n{% if true %}\r\nz{% endif %}"), "line\nz")
    }

    func testLoops() throws {
        XCTAssertEqual(try render("{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
                       "10TrueFalse3;21FalseFalse3;32FalseTrue3;")
        XCTAssertEqual(try render("{% for x in range(6) if x is odd %}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}"), "1,3,5")
        XCTAssertEqual(try render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty")
        XCTAssertEqual(try render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "0134")
        XCTAssertEqual(try render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }} {% endfor %}"), "a=1 b=2 ")
        XCTAssertEqual(try render("{% for x in 'ab' %}{{ loop.previtem }}|{{ x }}|{{ loop.nextitem }};{% endfor %}"), "|a|b;a|b|;")
        // A set inside a loop does not leak; a namespace carries state out.
        XCTAssertEqual(try render("{% set n = 0 %}{% set ns = namespace(n=0) %}{% for x in [1, 2] %}{% set n = n + x %}{% set ns.n = ns.n + x %}{% endfor %}{{ n }} {{ ns.n }}"), "0 3")
    }

    func testExpressions() throws {
        XCTAssertEqual(try render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }}"), "3 -4 1 2 3.5 1024 7")
        XCTAssertEqual(try render("{{ 'a' ~ 1 ~ none }} {{ 'a' + 'b' }} {{ 'ab' * 2 }} {{ [1] + [2] }}"), "a1None ab abab [1, 2]")
        XCTAssertEqual(try render("{{ [1, 2, 3, 4][1:] }} {{ [1, 2, 3][::-1] }} {{ 'hello'[1:3] }} {{ 'hello'[-1] }}"), "[2, 3, 4] [3, 2, 1] el o")
        XCTAssertEqual(try render("{{ {'a': 'x', 'b': [true, none, 1.5]} }}"), "{'a': 'x', 'b': [True, None, 1.5]}")
        XCTAssertEqual(try render("{{ 'y' if 1 < 2 and not false else 'n' }}{{ 'a' in 'cat' }}{{ 3 not in [1, 2] }}"), "yTrueTrue")
        // Strings are sequences of code points, as in Python (the family emoji is 5 of them).
        XCTAssertEqual(try render("{{ '👩‍👩‍👧é' | length }} {{ '👩‍👩‍👧'[1:2] | length }} {{ 'héllo'[1] }} {{ 'ab' | reverse }} {{ 'éCOLE' | capitalize }}"), "6 1 é ba École")
        XCTAssertEqual(try render("{{ 'it\\'s\\n\\u00e9' }}"), "it's\né")
        XCTAssertEqual(try render("{{ messages[0]['role'] }}{{ messages[0].content }}{{ messages[1] }}", [Self.message("user", "hi")]), "userhi")
        XCTAssertEqual(try render("{{ missing }}{{ missing is defined }}{{ missing | default('d') }}"), "Falsed")
    }

    func testFiltersAndMethods() throws {
        XCTAssertEqual(try render("{{ '  x  ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}"), "x|AB|ab|Hello World|Hello")
        XCTAssertEqual(try render("{{ [1, 2] | length }}{{ 'abc' | count }}{{ [3, 4] | first }}{{ [3, 4] | last }}{{ [1, 2] | join('-') }}"), "2334" + "1-2")
        XCTAssertEqual(try render("{{ {'b': 1, 'a': [1, 'é']} | tojson }}|{{ {'a': 1} | tojson(indent=2) }}"), "{\"b\": 1, \"a\": [1, \"é\"]}|{\n  \"a\": 1\n}")
        XCTAssertEqual(try render("{{ 'a-b-c'.split('-') }}{{ ' a  b '.split() }}{{ ' x '.strip() }}{{ 'xx'.startswith('x') }}{{ 'ab'.endswith(('c', 'b')) }}"), "['a', 'b', 'c']['a', 'b']xTrueTrue")
        XCTAssertEqual(try render("{{ 'aaa'.replace('a', 'b', 2) }}{{ 'a' | replace('a', 'c') }}{{ '5' | int + 1 }}{{ [1, 2] | list | string }}"), "bbac6[1, 2]")
        XCTAssertEqual(try render("{{ {'a': 1}.get('a') }}{{ {'a': 1}.get('b', 2) }}{{ {'a': 1}.keys() | list }}{{ {'a': 1} | items | list }}"), "12['a'][('a', 1)]")
        let messages = [Self.message("user", "u1"), Self.message("assistant", "a1"), Self.message("user", "u2")]
        XCTAssertEqual(try render("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}", messages), "u1,u2")
        XCTAssertEqual(try render("{{ messages | rejectattr('role', 'equalto', 'user') | list | length }}", messages), "1")
    }

    func testTests() throws {
        XCTAssertEqual(try render("{{ (1, 'a') }}{{ (1,) }}{{ () }}{% set a, b = 1, 2 %}{{ b }}{{ (1, 2) | tojson }}{{ [(1, 2)] == [[1, 2]] }}"), "(1, 'a')(1,)()2[1, 2]False")
        XCTAssertEqual(try render("{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 1.5 is number }}{{ [] is sequence }}{{ true is true }}{{ 1 is true }}{{ false is false }}"),
                       "TrueTrueTrueTrueTrueTrueTrueFalseTrue")
        XCTAssertEqual(try render("{{ 4 is divisibleby 2 }}{{ 3 is not even }}{{ x is not defined }}{{ 1 is equalto 1.0 }}"), "TrueTrueTrueTrue")
    }

    func testRaiseExceptionAndGlobals() throws {
        assertError("{{ raise_exception('bad roles') }}", kind: .invalidArgument, contains: ["chat template raised an exception: bad roles"])
        XCTAssertEqual(try render("{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}{{ tools is none }}", generation: true), "<s></s>TrueTrue")
        XCTAssertEqual(try render("{{ date }}", extra: ["date": .string("today")]), "today")
        XCTAssertEqual(try render("{{ strftime_now('%Y') | length }}"), "4")
        XCTAssertEqual(try render("{% generation %}x{% endgeneration %}"), "x")
        XCTAssertEqual(try render("{% set x %}a{{ 1 }}{% endset %}{{ x }}!"), "a1!")
    }

    func testSyntaxErrorsNamePosition() {
        assertError("hello\n{% if x %}", contains: ["line 2, column 4", "'{% if %}' opened here is never closed"])
        assertError("{{ 1 + }}", contains: ["line 1, column 8", "expected an expression"])
        assertError("ab\n  {{ x | frobnicate }}", contains: ["line 2, column 10", "unknown filter 'frobnicate'"])
        assertError("{% macro m() %}{% endmacro %}", contains: ["line 1, column 4", "unsupported tag 'macro'"])
        assertError("{% include 'x' %}", contains: ["unsupported tag 'include'"])
        assertError("{{ x is frob }}", contains: ["unknown test 'frob'"])
        assertError("{{ 'abc'.zfill(5) }}", contains: ["line 1, column", "zfill"])
        assertError("{{ 'abc' }", contains: ["never closed"])
        assertError("{% endfor %}", contains: ["endfor"])
        assertError("{{ 'unterminated }}", contains: ["string opened here is never closed"])
        assertError("{{ x.y }}", contains: ["'x' is undefined"])
        assertError("{{ 1 / 0 }}", contains: ["division by zero"])
    }

    func testWorkIsBounded() {
        assertError("{% for i in range(10**9) %}x{% endfor %}", contains: ["range() of 1000000000 items exceeds the limit"])
        assertError("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}",
                    contains: ["loops ran more than 1000000 iterations"])
        assertError("{{ 'x' * 1000000000000 }}", contains: ["exceeds the limit"])
        assertError("{% for i in range(20000) %}\n" + String(repeating: "y", count: 1000) + "{% endfor %}", contains: ["line 2, column 1", "output exceeds the limit"])
        assertError("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", contains: ["exceeds the limit"])
        assertError("{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}", contains: ["deeper than 64 levels"])
        assertError("{{ x" + String(repeating: ".a", count: 5000) + " }}", contains: ["nested deeper than"])
        assertError("{{ 1" + String(repeating: " + 1", count: 5000) + " }}", contains: ["nested deeper than"])
        assertError("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}", contains: ["nested deeper than 128 levels"])
        assertError("{% set ns = namespace(x=none) %}{% for i in range(100000) %}{% set ns.x = namespace(x=ns.x) %}{% endfor %}", contains: ["namespace() objects"])
        assertError("{% for i in range(0, 1, -9223372036854775807 - 1) %}{{ i }}{% endfor %}{{ 7 is divisibleby(0) }}", contains: ["divisibleby"])
        assertError("{% for x in 5 %}{% endfor %}", contains: ["line 1, column 13", "'int' object is not iterable"])
        assertError(String(repeating: "{% if true %}", count: 500) + String(repeating: "{% endif %}", count: 500), contains: ["nesting deeper than"])
    }

    /// Every fixture template with bytes dropped, duplicated or replaced at seeded random places
    /// compiles and renders, or throws a LoRAMixerError; it never traps.
    func testMangledTemplatesThrowOrRender() throws {
        var generator = SplitMix64(seed: 13)
        let pieces: [String] = ["{", "}", "%", "-", "(", ")", "[", "]", "'", "\"", ".", "|", ":", "*", "\n", " ", "x", "0", "é"]
        let messages = [Self.message("user", "hi"), Self.message("assistant", "yo")]
        for name in Self.fixtureNames {
            let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("chat_templates", name + ".json")))
            let source = try XCTUnwrap(try JSONParser.parse([UInt8](data), context: name).object?["chat_template"]?.string)
            let characters = Array(source)
            for _ in 0..<60 {
                var mangled = characters
                for _ in 0..<3 {
                    let position = Int(generator.next() % UInt64(mangled.count))
                    switch generator.next() % 3 {
                    case 0: mangled.remove(at: position)
                    case 1: mangled.insert(mangled[position], at: position)
                    default: mangled[position] = Character(pieces[Int(generator.next() % UInt64(pieces.count))])
                    }
                }
                do {
                    _ = try ChatTemplate(source: String(mangled)).render(messages: messages, addGenerationPrompt: true)
                } catch is LoRAMixerError {
                }
            }
        }
    }

    func testMessagesMustBeRoleContentObjects() throws {
        let template = "{% for m in messages %}{{ m.role }}:{{ m.content }}{% endfor %}"
        assertError(template, [.string("hi")], kind: .invalidArgument, contains: ["chat message 0 must be an object"])
        assertError(template, [Self.message("user", "a"), .object(["content": .string("x")])], kind: .invalidArgument, contains: ["chat message 1 has no 'role'"])
        assertError(template, [.object(["role": .number("1"), "content": .string("x")])], kind: .invalidArgument, contains: ["'role' must be a string"])
        assertError(template, [.object(["role": .string("user")])], kind: .invalidArgument, contains: ["has no 'content'"])
        assertError(template, [.object(["role": .string("user"), "content": .number("3")])], kind: .invalidArgument, contains: ["'content' must be"])
        let parts: JSONValue = .array([.object(["type": .string("text"), "text": .string("hi")])])
        XCTAssertEqual(try render("{{ messages[0].content[0].text }}", [.object(["role": .string("user"), "content": parts])]), "hi")
        XCTAssertEqual(try ChatTemplate(source: template).render(messages: [["role": .string("user"), "content": .string("x")]],
                                                                  addGenerationPrompt: false), "user:x")
    }
}
