/// A byte-level BPE model as `tokenizers` stores it in tokenizer.json's `model`: the vocabulary,
/// the merges as ranks (earlier merge = lower rank = applied first), `ignore_merges`, and an
/// optional `unk_token`. Words are split into Unicode scalars, each looked up in the vocabulary,
/// then the adjacent pair of lowest rank is merged (leftmost first on ties) until none is left.
final class BPEModel: @unchecked Sendable {
    let vocabulary: [String: Int32]
    /// id -> token, for decoding (a dictionary: ids need not be contiguous, and a hostile file
    /// with one huge id must not make us allocate a table that large).
    let tokens: [Int32: String]
    /// (left id << 32 | right id) -> (rank, merged id).
    private let merges: [UInt64: (rank: Int32, merged: Int32)]
    /// Single-scalar tokens, the starting symbols of every word.
    private let scalarIDs: [UInt32: Int32]
    private let ignoreMerges: Bool
    private let unknownID: Int32?
    private var cache: [String: [Int32]] = [:]
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
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(vocabObject.count)
        var tokens: [Int32: String] = [:]
        tokens.reserveCapacity(vocabObject.count)
        // The ids in the order of `vocabObject.entries` (for resolving merges through its index),
        // and the single-scalar tokens, the starting symbols of every word.
        var idsByPosition: [Int32] = []
        idsByPosition.reserveCapacity(vocabObject.count)
        var scalarIDs: [UInt32: Int32] = [:]
        for (token, value) in vocabObject.entries {
            guard let id = value.int, id >= 0, id < Int(Int32.max) else {
                throw LoRAMixerError.format("\(where_): vocab entry \(quoted(token)) has id \(value), expected a non-negative 32-bit integer")
            }
            // Keys are unique (the parser refuses duplicates), so every entry is new here.
            vocabulary[token] = Int32(id)
            tokens[Int32(id)] = token
            idsByPosition.append(Int32(id))
            if token.utf8.count <= 4 {
                let scalars = token.unicodeScalars
                if let scalar = scalars.first, scalars.index(after: scalars.startIndex) == scalars.endIndex {
                    scalarIDs[scalar.value] = Int32(id)
                }
            }
        }

        for key in ["dropout", "continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = json[key], value != .null {
                throw LoRAMixerError.format("\(where_): `\(key)` = \(value) is not supported (only null)")
            }
        }
        if json["byte_fallback"]?.bool == true {
            throw LoRAMixerError.format("\(where_): `byte_fallback` (SentencePiece-style BPE) is not supported yet")
        }
        ignoreMerges = json["ignore_merges"]?.bool ?? false
        switch json["unk_token"] {
        case nil, .null?:
            unknownID = nil
        case .string(let unk)?:
            guard let id = vocabulary[unk] else {
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
        /// The id of the token `first + second`: through the vocabulary object's byte index when
        /// it has one (no String hashing, no concatenation built), else the String dictionary.
        func id(_ first: String, _ second: String = "") -> Int32? {
            var first = first, second = second
            let found = first.withUTF8 { a in second.withUTF8 { b in vocabObject.position(bytes: a, b) } }
            if case .some(let position) = found { return position.map { idsByPosition[$0] } }
            return vocabulary[second.isEmpty ? first : first + second]
        }
        for (rank, entry) in mergeList.enumerated() {
            let pair: (String, String)
            switch entry {
            case .array(let parts):
                guard parts.count == 2, case .string(let left) = parts[0], case .string(let right) = parts[1] else {
                    throw LoRAMixerError.format("\(where_): merge \(rank) must be an array of two strings")
                }
                pair = (left, right)
            case .string(let text):
                // split on the scalar, not on Characters (a space followed by a combining mark is one)
                let parts = text.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw LoRAMixerError.format("\(where_): merge \(rank) \(quoted(text)) is not two tokens separated by one space")
                }
                pair = (String(String.UnicodeScalarView(parts[0])), String(String.UnicodeScalarView(parts[1])))
            default:
                throw LoRAMixerError.format("\(where_): merge \(rank) must be a string \"a b\" or an array [\"a\", \"b\"], found \(entry.kindName)")
            }
            guard let left = id(pair.0) else {
                throw LoRAMixerError.format("\(where_): merge \(rank) (\(quoted(pair.0)), \(quoted(pair.1))) names \(quoted(pair.0)), which is not in the vocabulary")
            }
            guard let right = id(pair.1) else {
                throw LoRAMixerError.format("\(where_): merge \(rank) (\(quoted(pair.0)), \(quoted(pair.1))) names \(quoted(pair.1)), which is not in the vocabulary")
            }
            guard let merged = id(pair.0, pair.1) else {
                throw LoRAMixerError.format("\(where_): merge \(rank) (\(quoted(pair.0)), \(quoted(pair.1))) makes \(quoted(pair.0 + pair.1)), which is not in the vocabulary")
            }
            let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
            if merges[key] == nil { merges[key] = (Int32(rank), merged) }
        }
        self.vocabulary = vocabulary
        self.tokens = tokens
        self.merges = merges
        self.scalarIDs = scalarIDs
    }

    /// Appends the ids of one pre-tokenized word. A scalar missing from the vocabulary becomes
    /// `unk_token`, or is dropped when there is none, as `tokenizers` does.
    func encode(_ word: String, into output: inout [Int32]) {
        if ignoreMerges, let id = vocabulary[word] {
            output.append(id)
            return
        }
        if let cached = cacheLock.withLock({ cache[word] }) {
            output.append(contentsOf: cached)
            return
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.unicodeScalars.count)
        for scalar in word.unicodeScalars {
            if let id = scalarIDs[scalar.value] {
                symbols.append(id)
            } else if let unknownID {
                symbols.append(unknownID)
            }
        }
        merge(&symbols)
        output.append(contentsOf: symbols)
        guard symbols.count <= Self.cachedWordLimit else { return }
        cacheLock.withLock {
            if cache.count >= Self.cacheCapacity { cache.removeAll(keepingCapacity: true) }
            cache[word] = symbols
        }
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
