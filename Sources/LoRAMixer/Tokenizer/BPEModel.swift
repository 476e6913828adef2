/// A BPE model as `tokenizers` stores it in tokenizer.json's `model`: the vocabulary, the merges
/// as ranks (earlier merge = lower rank = applied first), `ignore_merges`, an optional
/// `unk_token` with `fuse_unk`, and SentencePiece's `byte_fallback`. Words are split into Unicode
/// scalars, each looked up in the vocabulary, then the adjacent pair of lowest rank is merged
/// (leftmost first on ties) until none is left. Lookups compare scalars, not canonical
/// equivalence: a SentencePiece vocabulary may hold both "é" and "e\u{301}".
final class BPEModel: @unchecked Sendable {
    let vocabulary: [ScalarString: Int32]
    /// id -> token, for decoding (a dictionary: ids need not be contiguous, and a hostile file
    /// with one huge id must not make us allocate a table that large).
    let tokens: [Int32: String]
    /// (left id << 32 | right id) -> (rank, merged id).
    private let merges: [UInt64: (rank: Int32, merged: Int32)]
    /// Single-scalar tokens, the starting symbols of every word.
    private let scalarIDs: [UInt32: Int32]
    private let ignoreMerges: Bool
    let unknownID: Int32?
    /// Whether consecutive unknown scalars become one `unk_token`.
    private let fuseUnknown: Bool
    /// With `byte_fallback`, the id of each byte's `<0xXX>` token (nil where the vocabulary has
    /// none); empty without it.
    private let byteIDs: [Int32?]
    private var cache: [ScalarString: [Int32]] = [:]
    private let cacheLock = Lock()
    static let cacheCapacity = 10_000
    /// Words that encode to more tokens than this are not cached (they are rare, and would
    /// make the cache's memory unbounded).
    static let cachedWordLimit = 256

    init(json: JSONObject, context: String) throws {
        let where_ = "\(context): model (BPE)"
        guard let vocabObject = json["vocab"]?.object else {
            throw LoRAMixerError.format("\(where_): `vocab` must be an object of token -> id, found \(json["vocab"]?.kindName ?? "nothing")")
        }
        var vocabulary: [ScalarString: Int32] = [:]
        vocabulary.reserveCapacity(vocabObject.count)
        for (token, value) in vocabObject.entries {
            guard let id = value.int, id >= 0, id < Int(Int32.max) else {
                throw LoRAMixerError.format("\(where_): vocab entry \(quoted(token)) has id \(value), expected a non-negative 32-bit integer")
            }
            vocabulary[ScalarString(token)] = Int32(id)
        }
        var tokens: [Int32: String] = [:]
        tokens.reserveCapacity(vocabulary.count)
        for (token, id) in vocabulary { tokens[id] = token.text }

        for key in ["dropout", "continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = json[key], value != .null {
                throw LoRAMixerError.format("\(where_): `\(key)` = \(value) is not supported (only null)")
            }
        }
        ignoreMerges = json["ignore_merges"]?.bool ?? false
        fuseUnknown = json["fuse_unk"]?.bool ?? false
        if json["byte_fallback"]?.bool == true {
            // the spelling of Rust's format!("<{b:#04X}>") in `tokenizers`
            let hex = Array("0123456789ABCDEF".utf8)
            byteIDs = (0..<256).map { byte in
                let name = String(decoding: Array("<0x".utf8) + [hex[byte >> 4], hex[byte & 15], UInt8(ascii: ">")], as: UTF8.self)
                return vocabulary[ScalarString(name)]
            }
        } else {
            byteIDs = []
        }
        switch json["unk_token"] {
        case nil, .null?:
            unknownID = nil
        case .string(let unk)?:
            guard let id = vocabulary[ScalarString(unk)] else {
                throw LoRAMixerError.format("\(where_): unk_token \(quoted(unk)) is not in the vocabulary")
            }
            unknownID = id
        case let other?:
            throw LoRAMixerError.format("\(where_): `unk_token` must be a string or null, found \(other.kindName)")
        }

        guard let mergeList = json["merges"]?.array else {
            throw LoRAMixerError.format("\(where_): `merges` must be an array, found \(json["merges"]?.kindName ?? "nothing")")
        }
        var merges: [UInt64: (rank: Int32, merged: Int32)] = [:]
        merges.reserveCapacity(mergeList.count)
        for (rank, entry) in mergeList.enumerated() {
            let pair: (String, String)
            switch entry {
            case .string(let text):
                // split on the scalar, not on Characters (a space followed by a combining mark is one)
                let parts = text.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw LoRAMixerError.format("\(where_): merge \(rank) \(quoted(text)) is not two tokens separated by one space")
                }
                pair = (String(String.UnicodeScalarView(parts[0])), String(String.UnicodeScalarView(parts[1])))
            case .array(let parts):
                guard parts.count == 2, let left = parts[0].string, let right = parts[1].string else {
                    throw LoRAMixerError.format("\(where_): merge \(rank) must be an array of two strings")
                }
                pair = (left, right)
            default:
                throw LoRAMixerError.format("\(where_): merge \(rank) must be a string \"a b\" or an array [\"a\", \"b\"], found \(entry.kindName)")
            }
            for part in [pair.0, pair.1] where vocabulary[ScalarString(part)] == nil {
                throw LoRAMixerError.format("\(where_): merge \(rank) (\(quoted(pair.0)), \(quoted(pair.1))) names \(quoted(part)), which is not in the vocabulary")
            }
            guard let left = vocabulary[ScalarString(pair.0)], let right = vocabulary[ScalarString(pair.1)] else { continue }
            guard let merged = vocabulary[ScalarString(pair.0 + pair.1)] else {
                throw LoRAMixerError.format("\(where_): merge \(rank) (\(quoted(pair.0)), \(quoted(pair.1))) makes \(quoted(pair.0 + pair.1)), which is not in the vocabulary")
            }
            let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
            if merges[key] == nil { merges[key] = (Int32(rank), merged) }
        }
        var scalarIDs: [UInt32: Int32] = [:]
        for (token, id) in vocabulary {
            let scalars = token.text.unicodeScalars
            if scalars.count == 1, let scalar = scalars.first { scalarIDs[scalar.value] = id }
        }
        self.vocabulary = vocabulary
        self.tokens = tokens
        self.merges = merges
        self.scalarIDs = scalarIDs
    }

    /// Appends the ids of one pre-tokenized word. A scalar missing from the vocabulary becomes
    /// its UTF-8 bytes' `<0xXX>` tokens with `byte_fallback` (when all exist), else `unk_token`
    /// (one for a run of them with `fuse_unk`), or is dropped when there is none, as `tokenizers`
    /// does.
    func encode(_ word: String, into output: inout [Int32]) {
        let key = ScalarString(word)
        if ignoreMerges, let id = vocabulary[key] {
            output.append(id)
            return
        }
        if let cached = cacheLock.withLock({ cache[key] }) {
            output.append(contentsOf: cached)
            return
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.unicodeScalars.count)
        // An unknown scalar's unk waits until a known one (or the end) so that a run can fuse.
        // Byte tokens do not flush it: `tokenizers` adds them ahead of a pending unk.
        var pendingUnknown = false
        for scalar in word.unicodeScalars {
            if let id = scalarIDs[scalar.value] {
                if pendingUnknown, let unknownID {
                    symbols.append(unknownID)
                    pendingUnknown = false
                }
                symbols.append(id)
            } else if !byteIDs.isEmpty, appendBytes(of: scalar, to: &symbols) {
                continue
            } else if let unknownID {
                if pendingUnknown, !fuseUnknown { symbols.append(unknownID) }
                pendingUnknown = true
            }
        }
        if pendingUnknown, let unknownID { symbols.append(unknownID) }
        merge(&symbols)
        output.append(contentsOf: symbols)
        guard symbols.count <= Self.cachedWordLimit else { return }
        cacheLock.withLock {
            if cache.count >= Self.cacheCapacity { cache.removeAll(keepingCapacity: true) }
            cache[key] = symbols
        }
    }

    /// Appends the `<0xXX>` tokens of the scalar's UTF-8 bytes; false (nothing appended) when one
    /// is missing from the vocabulary.
    private func appendBytes(of scalar: Unicode.Scalar, to symbols: inout [Int32]) -> Bool {
        var ids: [Int32] = []
        var complete = true
        UTF8.encode(scalar) { byte in
            if let id = byteIDs[Int(byte)] { ids.append(id) } else { complete = false }
        }
        if complete { symbols.append(contentsOf: ids) }
        return complete
    }

    /// Merges the lowest-ranked adjacent pair (the leftmost among equals) until no pair has a
    /// merge, as `tokenizers` does: a min-heap of candidate merges keyed by (rank, position)
    /// over a linked list of symbols, so a long word costs O(n log n), not O(n^2). A popped
    /// candidate is applied only if its pair is still adjacent and still makes the same token.
    private func merge(_ symbols: inout [Int32]) {
        let count = symbols.count
        guard count > 1 else { return }
        var next = Array(1...count)      // count = none
        var previous = Array(-1..<(count - 1))
        var alive = [Bool](repeating: true, count: count)
        var heap = MergeHeap()
        func candidate(_ left: Int, _ right: Int) {
            let key = UInt64(UInt32(symbols[left])) << 32 | UInt64(UInt32(symbols[right]))
            if let merge = merges[key] { heap.push(.init(rank: merge.rank, position: left, merged: merge.merged)) }
        }
        for index in 0..<(count - 1) { candidate(index, index + 1) }
        while let top = heap.pop() {
            let left = top.position
            guard alive[left] else { continue }
            let right = next[left]
            guard right < count else { continue }
            let key = UInt64(UInt32(symbols[left])) << 32 | UInt64(UInt32(symbols[right]))
            guard let current = merges[key], current.merged == top.merged else { continue }
            symbols[left] = top.merged
            alive[right] = false
            next[left] = next[right]
            if next[right] < count { previous[next[right]] = left }
            if previous[left] >= 0 { candidate(previous[left], left) }
            if next[left] < count { candidate(left, next[left]) }
        }
        var write = 0
        for index in 0..<count where alive[index] {
            symbols[write] = symbols[index]
            write += 1
        }
        symbols.removeLast(count - write)
    }
}

/// A binary min-heap of candidate merges ordered by rank, then position.
private struct MergeHeap {
    struct Entry {
        let rank: Int32
        let position: Int
        let merged: Int32

        func precedes(_ other: Entry) -> Bool {
            rank != other.rank ? rank < other.rank : position < other.position
        }
    }

    private var entries: [Entry] = []

    mutating func push(_ entry: Entry) {
        entries.append(entry)
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].precedes(entries[parent]) else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let first = entries.first else { return nil }
        let last = entries.removeLast()
        guard !entries.isEmpty else { return first }
        entries[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < entries.count else { break }
            var best = left
            if left + 1 < entries.count, entries[left + 1].precedes(entries[left]) { best = left + 1 }
            guard entries[best].precedes(entries[parent]) else { break }
            entries.swapAt(best, parent)
            parent = best
        }
        return first
    }
}

/// A token in double quotes with control characters escaped, for error messages.
func quoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        if scalar.value < 0x20 || scalar == "\"" || scalar == "\\" {
            result += scalar.escaped(asASCII: false)
        } else {
            result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}
