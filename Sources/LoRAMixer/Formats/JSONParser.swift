/// A strict RFC 8259 parser. Its input comes from files we do not control (safetensors headers,
/// model configs), so it accepts nothing the grammar does not: no comments, no trailing commas,
/// no BOM, no NaN, no invalid UTF-8, no lone surrogates, no duplicate object keys (safetensors
/// requires duplicate tensor names to be refused) and no nesting deeper than `maximumDepth`
/// (recursion on hostile input must not exhaust the stack).
public enum JSONParser {
    /// The deepest nesting of arrays and objects accepted.
    public static let maximumDepth = 256

    /// Parses one JSON document. `context` (usually the file path) starts every error message.
    public static func parse(_ bytes: UnsafeRawBufferPointer, context: String) throws -> JSONValue {
        try parse(bytes, context: context, hooks: nil)
    }

    /// Parses one JSON document, handing the members `hooks` names to their readers instead of
    /// building `JSONValue`s for them (a tokenizer's 150k-entry vocabulary and its merges).
    static func parse(_ bytes: UnsafeRawBufferPointer, context: String, hooks: JSONMemberHooks?) throws -> JSONValue {
        var reader = JSONReader(bytes: bytes, context: context)
        reader.skipWhitespace()
        let value = try reader.readValue(depth: 0, hooks: hooks)
        reader.skipWhitespace()
        guard reader.position == bytes.count else {
            throw reader.error("unexpected \(reader.found) after the JSON value")
        }
        return value
    }

    public static func parse(_ bytes: [UInt8], context: String) throws -> JSONValue {
        try bytes.withUnsafeBytes { try parse($0, context: context) }
    }

    static func parse(_ bytes: [UInt8], context: String, hooks: JSONMemberHooks?) throws -> JSONValue {
        try bytes.withUnsafeBytes { try parse($0, context: context, hooks: hooks) }
    }

    public static func parse(_ text: String, context: String) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { try parse(UnsafeRawBufferPointer($0), context: context) }
    }
}

/// Members of a document read by the caller's code instead of being turned into `JSONValue`s,
/// by their path of object keys from the root: `hooks.children["model"]?.children["vocab"]`.
/// A reader gets the cursor at the member's value; it either reads the whole value (validating
/// it as the parser would, with the same error messages and positions) and returns what the
/// object keeps in its place, or returns nil without moving the cursor, and the parser reads the
/// value itself.
final class JSONMemberHooks {
    typealias Read = (_ reader: inout JSONReader, _ depth: Int) throws -> JSONValue?

    var children: [String: JSONMemberHooks] = [:]
    let read: Read?

    init(read: Read? = nil) { self.read = read }
}

/// The cursor over the input. It only lives for one `JSONParser.parse` call, which owns the
/// buffer's lifetime; every read is bounds-checked through `peek`. Member readers
/// (`JSONMemberHooks`) use its scanning methods, so that what they accept and the errors they
/// report are the parser's.
struct JSONReader {
    let bytes: UnsafeRawBufferPointer
    let context: String
    var position = 0

    init(bytes: UnsafeRawBufferPointer, context: String) {
        self.bytes = bytes
        self.context = context
    }

    func error(_ reason: String, at offset: Int? = nil) -> LoRAMixerError {
        .format("\(context): invalid JSON at byte \(offset ?? position): \(reason)")
    }

    func peek(_ ahead: Int = 0) -> UInt8? {
        let index = position + ahead
        return index < bytes.count ? bytes[index] : nil
    }

    /// Names the byte at the cursor for error messages: printable ASCII as itself, anything else
    /// in hex, so a message never carries raw binary.
    var found: String {
        guard let byte = peek() else { return "end of input" }
        if byte >= 0x20 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    mutating func skipWhitespace() {
        let count = bytes.count
        while position < count {
            let byte = bytes[position]
            guard byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 else { return }
            position += 1
        }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard peek() == byte else { throw error("expected \(what), found \(found)") }
        position += 1
    }

    mutating func readValue(depth: Int, hooks: JSONMemberHooks? = nil) throws -> JSONValue {
        guard let byte = peek() else { throw error("expected a value, found end of input") }
        switch byte {
        case UInt8(ascii: "{"): return .object(try readObject(depth: depth + 1, hooks: hooks))
        case UInt8(ascii: "["): return .array(try readArray(depth: depth + 1))
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "t"): try readLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try readLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try readLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try readNumber())
        default: throw error("expected a value, found \(found)")
        }
    }

    mutating func readLiteral(_ word: StaticString) throws {
        let start = position
        for index in 0..<word.utf8CodeUnitCount {
            guard peek(index) == word.utf8Start[index] else { throw error("expected '\(word)'", at: start) }
        }
        position += word.utf8CodeUnitCount
    }

    func checkDepth(_ depth: Int) throws {
        guard depth <= JSONParser.maximumDepth else {
            throw error("nesting deeper than \(JSONParser.maximumDepth) levels")
        }
    }

    mutating func readObject(depth: Int, hooks: JSONMemberHooks? = nil) throws -> JSONObject {
        try checkDepth(depth)
        position += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            return JSONObject()
        }
        // Members are collected first and indexed once at the end (one hash per key, no rehashing
        // as the index grows). A duplicate key is still the error reported when it comes before
        // another one: an error inside a later member first checks the members read so far.
        var entries: [(key: String, value: JSONValue)] = []
        var keyOffsets: [Int] = []
        func indexed() throws -> JSONObject {
            do {
                return try JSONObject(uniqueEntries: entries)
            } catch {
                throw self.error("duplicate key \"\(entries[error.index].key)\"", at: keyOffsets[error.index])
            }
        }
        do {
            while true {
                skipWhitespace()
                let keyOffset = position
                guard peek() == UInt8(ascii: "\"") else {
                    throw error("expected a string key, found \(found)")
                }
                let key = try readString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':' after an object key")
                skipWhitespace()
                let value: JSONValue
                if let member = hooks?.children[key] {
                    if let read = member.read, let captured = try read(&self, depth) {
                        value = captured
                    } else {
                        value = try readValue(depth: depth, hooks: member)
                    }
                } else {
                    value = try readValue(depth: depth)
                }
                entries.append((key, value))
                keyOffsets.append(keyOffset)
                skipWhitespace()
                if peek() == UInt8(ascii: "}") {
                    position += 1
                    break
                }
                try expect(UInt8(ascii: ","), "',' or '}' in an object")
            }
        } catch {
            _ = try indexed()
            throw error
        }
        return try indexed()
    }

    mutating func readArray(depth: Int) throws -> [JSONValue] {
        try checkDepth(depth)
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek() != UInt8(ascii: "]") { elements.reserveCapacity(4) }  // one allocation for short arrays (BPE merges)
        if peek() == UInt8(ascii: "]") {
            position += 1
            return elements
        }
        while true {
            skipWhitespace()
            elements.append(try readValue(depth: depth))
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                position += 1
                return elements
            }
            try expect(UInt8(ascii: ","), "',' or ']' in an array")
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, returned as its literal text.
    mutating func readNumber() throws -> String {
        let range = try scanNumber()
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// Validates the number at the cursor and returns where its literal text lies.
    mutating func scanNumber() throws -> Range<Int> {
        let start = position
        if peek() == UInt8(ascii: "-") { position += 1 }
        if peek() == UInt8(ascii: "0") {
            position += 1
            if let next = peek(), isDigit(next) { throw error("number with a leading zero", at: start) }
        } else {
            try readDigits("a digit")
        }
        if peek() == UInt8(ascii: ".") {
            position += 1
            try readDigits("a digit after the decimal point")
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            position += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { position += 1 }
            try readDigits("a digit in the exponent")
        }
        return start..<position
    }

    func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    mutating func readDigits(_ what: String) throws {
        guard let first = peek(), isDigit(first) else {
            throw error("expected \(what), found \(found)")
        }
        while let byte = peek(), isDigit(byte) { position += 1 }
    }

    /// Reads a string starting at its opening quote. Unescaped strings (the common case) are
    /// validated in place and copied once; escapes switch to building the UTF-8 bytes.
    mutating func readString() throws -> String {
        var decoded: [UInt8] = []
        if let raw = try scanString(escapedInto: &decoded) {
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[raw]), as: UTF8.self)
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    /// Reads a string starting at its opening quote and appends its UTF-8 bytes to `output`.
    mutating func readString(appendingTo output: inout [UInt8]) throws {
        if let raw = try scanString(escapedInto: &output) {
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[raw]))
        }
    }

    /// Validates the string starting at its opening quote and moves past it. Returns the range
    /// of its contents when it has no escapes (they are its UTF-8 bytes); otherwise appends the
    /// decoded bytes to `decoded` and returns nil.
    mutating func scanString(escapedInto decoded: inout [UInt8]) throws -> Range<Int>? {
        position += 1
        let start = position
        var hasEscapes = false
        let count = bytes.count
        while true {
            if !hasEscapes {
                // Printable ASCII other than '"' and '\\' needs no check: skip it in a tight loop.
                while position < count {
                    let byte = bytes[position]
                    guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") else { break }
                    position += 1
                }
            }
            guard position < count else { throw error("unterminated string", at: start - 1) }
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                let end = position
                position += 1
                return hasEscapes ? nil : start..<end
            case UInt8(ascii: "\\"):
                if !hasEscapes {
                    decoded.append(contentsOf: bytes[start..<position])
                    hasEscapes = true
                }
                try readEscape(into: &decoded)
            case 0x00..<0x20:
                throw error("unescaped control character 0x\(String(byte, radix: 16, uppercase: true)) in a string")
            case 0x20..<0x80:
                decoded.append(byte)  // only reached once escapes were seen
                position += 1
            default:
                // two-byte sequences (Latin, Greek, Cyrillic, byte-level BPE's "Ġ") inline
                let length: Int
                if byte >= 0xC2, byte <= 0xDF, position + 1 < count, bytes[position + 1] & 0xC0 == 0x80 {
                    length = 2
                } else {
                    length = try utf8SequenceLength()
                }
                if hasEscapes { decoded.append(contentsOf: bytes[position..<position + length]) }
                position += length
            }
        }
    }

    /// Validates the multi-byte UTF-8 sequence at the cursor (Unicode Table 3-7: no overlong
    /// forms, no surrogates, nothing above U+10FFFF) and returns its length.
    func utf8SequenceLength() throws -> Int {
        guard let lead = peek() else { throw error("unexpected end of input") }
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; secondRange = 0xA0...0xBF
        case 0xED: length = 3; secondRange = 0x80...0x9F
        case 0xE1...0xEF: length = 3
        case 0xF0: length = 4; secondRange = 0x90...0xBF
        case 0xF4: length = 4; secondRange = 0x80...0x8F
        case 0xF1...0xF3: length = 4
        default: throw error("invalid UTF-8 lead byte 0x\(String(lead, radix: 16, uppercase: true))")
        }
        for index in 1..<length {
            guard let byte = peek(index), (index == 1 ? secondRange : 0x80...0xBF).contains(byte) else {
                throw error("invalid UTF-8 sequence")
            }
        }
        return length
    }

    mutating func readEscape(into output: inout [UInt8]) throws {
        let start = position
        position += 1
        guard let byte = peek() else { throw error("unterminated string") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(byte)
        case UInt8(ascii: "b"): output.append(0x08)
        case UInt8(ascii: "f"): output.append(0x0C)
        case UInt8(ascii: "n"): output.append(0x0A)
        case UInt8(ascii: "r"): output.append(0x0D)
        case UInt8(ascii: "t"): output.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try readHex4())
            if (0xDC00...0xDFFF).contains(scalar) {
                throw error("lone low surrogate \\u\(String(scalar, radix: 16, uppercase: true))", at: start)
            }
            if (0xD800...0xDBFF).contains(scalar) {
                guard peek() == UInt8(ascii: "\\"), peek(1) == UInt8(ascii: "u") else {
                    throw error("high surrogate not followed by a \\u low surrogate", at: start)
                }
                position += 2
                let low = UInt32(try readHex4())
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw error("high surrogate followed by \\u\(String(low, radix: 16, uppercase: true)), not a low surrogate", at: start)
                }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            // Surrogates were handled above, so the scalar is always valid.
            if let unicode = Unicode.Scalar(scalar) { UTF8.encode(unicode) { output.append($0) } }
        default:
            throw error("invalid escape '\\\(Character(Unicode.Scalar(byte)))'", at: start)
        }
    }

    mutating func readHex4() throws -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard let byte = peek(), let digit = hexValue(byte) else {
                throw error("expected 4 hex digits after \\u, found \(found)")
            }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }

    func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
