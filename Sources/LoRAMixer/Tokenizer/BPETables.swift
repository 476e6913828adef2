/// A BPE model's merges as read, before they are resolved against the vocabulary: each merge's
/// two tokens as byte ranges of one arena, in rank order, up to the first entry that is not a
/// pair of tokens, whose error `BPEModel` reports once the merges before it have been checked
/// (the order in which `tokenizers`-style validation meets them).
struct MergeList {
    struct Span {
        var leftStart: UInt32
        var leftEnd: UInt32
        var rightStart: UInt32
        var rightEnd: UInt32
    }

    var bytes: [UInt8] = []
    var spans: [Span] = []
    /// The first entry that is not a pair of tokens: its rank and what is wrong with it (the
    /// message without the model's context).
    var problem: (rank: Int, message: String)?

    init() {}

    /// The merges of a parsed document (a GGUF file's, or a file whose `merges` was not read
    /// by `BPETableReader`).
    init(json entries: [JSONValue]) {
        spans.reserveCapacity(entries.count)
        for (rank, entry) in entries.enumerated() {
            switch entry {
            case .string(let text):
                let start = bytes.count
                bytes.append(contentsOf: text.utf8)
                guard addSplit(start: start, rank: rank) else { return }
            case .array(let parts):
                guard parts.count == 2, let left = parts[0].string, let right = parts[1].string else {
                    problem = (rank, Self.notTwoStrings(rank))
                    return
                }
                let leftStart = bytes.count
                bytes.append(contentsOf: left.utf8)
                let rightStart = bytes.count
                bytes.append(contentsOf: right.utf8)
                addPair(leftStart, rightStart)
            default:
                problem = (rank, Self.wrongKind(rank, entry.kindName))
                return
            }
            guard bytes.count <= Vocabulary.maximumBytes else {
                spans.removeLast()
                problem = (rank, "merge \(rank): the merges' tokens are longer than \(Vocabulary.maximumBytes) bytes in all")
                return
            }
        }
    }

    static func notTwoStrings(_ rank: Int) -> String { "merge \(rank) must be an array of two strings" }

    static func wrongKind(_ rank: Int, _ kind: String) -> String {
        "merge \(rank) must be a string \"a b\" or an array [\"a\", \"b\"], found \(kind)"
    }

    /// Adds the merge "left right" whose text is the arena from `start` on; false (and the
    /// problem set, the text dropped) when it does not hold exactly one space.
    mutating func addSplit(start: Int, rank: Int) -> Bool {
        // split on the space byte: a scalar split, not a Character one (a space followed by a
        // combining mark is one Character)
        var space = -1
        var spaces = 0
        for index in start..<bytes.count where bytes[index] == 0x20 {
            if spaces == 0 { space = index }
            spaces += 1
        }
        guard spaces == 1 else {
            let text = String(decoding: bytes[start...], as: UTF8.self)
            problem = (rank, "merge \(rank) \(quoted(text)) is not two tokens separated by one space")
            bytes.removeSubrange(start...)
            return false
        }
        spans.append(Span(leftStart: UInt32(truncatingIfNeeded: start), leftEnd: UInt32(truncatingIfNeeded: space),
                          rightStart: UInt32(truncatingIfNeeded: space + 1), rightEnd: UInt32(truncatingIfNeeded: bytes.count)))
        return true
    }

    /// Adds the merge whose left token is the arena from `leftStart` to `rightStart` and whose
    /// right token is the rest.
    mutating func addPair(_ leftStart: Int, _ rightStart: Int) {
        spans.append(Span(leftStart: UInt32(truncatingIfNeeded: leftStart), leftEnd: UInt32(truncatingIfNeeded: rightStart),
                          rightStart: UInt32(truncatingIfNeeded: rightStart), rightEnd: UInt32(truncatingIfNeeded: bytes.count)))
    }
}

/// Reads `model.vocab` and `model.merges` of a tokenizer.json straight from its bytes while the
/// rest of the document is parsed (`JSONMemberHooks`): tokens are decoded into the vocabulary's
/// arena and merges into a `MergeList`, with no `JSONValue` built for them. The parser's own
/// scanning methods read them, so malformed JSON is refused with the same messages and byte
/// offsets as anywhere else; well-formed JSON of the wrong shape (an id that is not an integer,
/// a merge that is not a pair) is noted and reported by `BPEModel` as before. A member of another
/// kind (a vocabulary that is an array) is left to the parser, for `BPEModel` to refuse.
final class BPETableReader {
    private(set) var vocabulary: Vocabulary?
    /// The first vocabulary entry whose id is not a non-negative 32-bit integer.
    private(set) var vocabularyProblem: String?
    private(set) var merges: MergeList?

    /// What the model object keeps in place of the members read here.
    static let placeholder = JSONValue.null

    var hooks: JSONMemberHooks {
        let model = JSONMemberHooks()
        model.children["vocab"] = JSONMemberHooks { [unowned self] reader, depth in try readVocabulary(&reader, depth: depth) }
        model.children["merges"] = JSONMemberHooks { [unowned self] reader, depth in try readMerges(&reader, depth: depth) }
        let root = JSONMemberHooks()
        root.children["model"] = model
        return root
    }

    /// The vocabulary object, as `JSONReader.readObject` reads one (same grammar, same errors,
    /// a repeated key refused as the parser refuses it: once the object is read, or when an
    /// error stops it, the first repeat among the members read so far).
    private func readVocabulary(_ reader: inout JSONReader, depth: Int) throws -> JSONValue? {
        guard reader.peek() == UInt8(ascii: "{") else { return nil }
        try reader.checkDepth(depth + 1)
        reader.position += 1
        var vocabulary = Vocabulary(capacity: 1024)
        var keyOffsets: [Int] = []
        var problem: String?
        func finish() throws {
            if let repeated = vocabulary.finish() {
                throw reader.error("duplicate key \"\(vocabulary.text(at: repeated))\"", at: keyOffsets[repeated])
            }
        }
        do {
            reader.skipWhitespace()
            if reader.peek() == UInt8(ascii: "}") {
                reader.position += 1
            } else {
                while true {
                    reader.skipWhitespace()
                    let keyOffset = reader.position
                    guard reader.peek() == UInt8(ascii: "\"") else {
                        throw reader.error("expected a string key, found \(reader.found)")
                    }
                    let start = vocabulary.arenaCount
                    try vocabulary.withArena { try reader.readString(appendingTo: &$0) }
                    guard vocabulary.arenaCount <= Vocabulary.maximumBytes else {
                        throw reader.error("the vocabulary's tokens are longer than \(Vocabulary.maximumBytes) bytes in all")
                    }
                    let length = vocabulary.arenaCount - start
                    reader.skipWhitespace()
                    try reader.expect(UInt8(ascii: ":"), "':' after an object key")
                    reader.skipWhitespace()
                    var id: Int32 = 0
                    if let value = try readID(&reader, depth: depth + 1) {
                        id = value
                    } else if problem == nil {
                        let token = vocabulary.withArena { String(decoding: $0[start...], as: UTF8.self) }
                        problem = "vocab entry \(quoted(token)) has id \(lastValue), expected a non-negative 32-bit integer"
                    }
                    vocabulary.appendLast(count: length, id: id)
                    keyOffsets.append(keyOffset)
                    reader.skipWhitespace()
                    if reader.peek() == UInt8(ascii: "}") {
                        reader.position += 1
                        break
                    }
                    try reader.expect(UInt8(ascii: ","), "',' or '}' in an object")
                }
            }
        } catch {
            try finish()
            throw error
        }
        try finish()
        self.vocabulary = vocabulary
        vocabularyProblem = problem
        return Self.placeholder
    }

    /// The value last read by `readID` when it was not a valid id, for the error message.
    private var lastValue = JSONValue.null

    /// A vocabulary entry's id: nil (the value kept in `lastValue`) when it is not an integer in
    /// 0..<Int32.max.
    private func readID(_ reader: inout JSONReader, depth: Int) throws -> Int32? {
        guard let first = reader.peek(), first == UInt8(ascii: "-") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else {
            lastValue = try reader.readValue(depth: depth)
            return nil
        }
        let range = try reader.scanNumber()
        if range.count <= 9 {
            var value: Int32 = 0
            var digits = true
            for index in range {
                let byte = reader.bytes[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                    digits = false
                    break
                }
                value = value * 10 + Int32(byte - UInt8(ascii: "0"))
            }
            if digits { return value }
        }
        // the general case: what `JSONValue.int` accepts
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: reader.bytes[range]), as: UTF8.self)
        if let value = Int(text), value >= 0, value < Int(Int32.max) { return Int32(value) }
        lastValue = .number(text)
        return nil
    }

    /// The merges array, as `JSONReader.readArray` reads one.
    private func readMerges(_ reader: inout JSONReader, depth: Int) throws -> JSONValue? {
        guard reader.peek() == UInt8(ascii: "[") else { return nil }
        try reader.checkDepth(depth + 1)
        reader.position += 1
        var merges = MergeList()
        merges.bytes.reserveCapacity(min(reader.bytes.count - reader.position, 1 << 22) / 4)
        reader.skipWhitespace()
        if reader.peek() == UInt8(ascii: "]") {
            reader.position += 1
        } else {
            var rank = 0
            while true {
                reader.skipWhitespace()
                try readMerge(&reader, depth: depth + 1, rank: rank, into: &merges)
                guard merges.bytes.count <= Vocabulary.maximumBytes else {
                    throw reader.error("the merges' tokens are longer than \(Vocabulary.maximumBytes) bytes in all")
                }
                rank += 1
                reader.skipWhitespace()
                if reader.peek() == UInt8(ascii: "]") {
                    reader.position += 1
                    break
                }
                try reader.expect(UInt8(ascii: ","), "',' or ']' in an array")
            }
        }
        self.merges = merges
        return Self.placeholder
    }

    /// One merge: "left right" or ["left", "right"]; anything else is read as a value and noted.
    private func readMerge(_ reader: inout JSONReader, depth: Int, rank: Int, into merges: inout MergeList) throws {
        let noted = merges.problem != nil
        switch reader.peek() {
        case UInt8(ascii: "\"")?:
            let start = merges.bytes.count
            try reader.readString(appendingTo: &merges.bytes)
            if noted {
                merges.bytes.removeSubrange(start...)
            } else {
                _ = merges.addSplit(start: start, rank: rank)
            }
            return
        case UInt8(ascii: "[")?:
            // the common shape read directly; anything else is read again as a value
            let position = reader.position
            let leftStart = merges.bytes.count
            if let rightStart = try readStringPair(&reader, depth: depth + 1, into: &merges.bytes) {
                if noted {
                    merges.bytes.removeSubrange(leftStart...)
                } else {
                    merges.addPair(leftStart, rightStart)
                }
                return
            }
            reader.position = position
            merges.bytes.removeSubrange(leftStart...)
            _ = try reader.readValue(depth: depth)
            if !noted { merges.problem = (rank, MergeList.notTwoStrings(rank)) }
        default:
            let value = try reader.readValue(depth: depth)
            if !noted { merges.problem = (rank, MergeList.wrongKind(rank, value.kindName)) }
        }
    }

    /// Reads `[ "left" , "right" ]`, appending both tokens to `output`, and returns where the
    /// right one starts there; nil as soon as the array is not two strings (the cursor and
    /// `output` are then the caller's to restore).
    private func readStringPair(_ reader: inout JSONReader, depth: Int, into output: inout [UInt8]) throws -> Int? {
        try reader.checkDepth(depth)
        reader.position += 1
        reader.skipWhitespace()
        guard reader.peek() == UInt8(ascii: "\"") else { return nil }
        try reader.readString(appendingTo: &output)
        let rightStart = output.count
        reader.skipWhitespace()
        guard reader.peek() == UInt8(ascii: ",") else { return nil }
        reader.position += 1
        reader.skipWhitespace()
        guard reader.peek() == UInt8(ascii: "\"") else { return nil }
        try reader.readString(appendingTo: &output)
        reader.skipWhitespace()
        guard reader.peek() == UInt8(ascii: "]") else { return nil }
        reader.position += 1
        return rightStart
    }
}
