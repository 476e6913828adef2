/// A BPE model as `tokenizers` stores it in tokenizer.json's `model`: the vocabulary, the merges
/// as ranks (earlier merge = lower rank = applied first), `ignore_merges`, an optional
/// `unk_token` with `fuse_unk`, and SentencePiece's `byte_fallback`. Words are split into Unicode
/// scalars, each looked up in the vocabulary, then the adjacent pair of lowest rank is merged
/// (leftmost first on ties) until none is left. Lookups compare scalars, not canonical
/// equivalence: a SentencePiece vocabulary may hold both "é" and "e\u{301}".
final class BPEModel: @unchecked Sendable {
    /// token <-> id, tokens compared by their exact bytes.
    let vocabulary: Vocabulary
    /// (left id, right id) -> (rank, merged id).
    private let merges: MergeTable
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

    /// The model object of tokenizer.json; `tables` holds its `vocab` and `merges` when they were
    /// read from the file's bytes (`BPETableReader`), else they are read from `json`.
    init(json: JSONObject, context: String, tables: BPETableReader? = nil) throws {
        let where_ = "\(context): model (BPE)"
        var vocabulary: Vocabulary
        if let read = tables?.vocabulary {
            if let problem = tables?.vocabularyProblem { throw LoRAMixerError.format("\(where_): \(problem)") }
            vocabulary = read
        } else {
            guard let vocabObject = json["vocab"]?.object else {
                throw LoRAMixerError.format("\(where_): `vocab` must be an object of token -> id, found \(json["vocab"]?.kindName ?? "nothing")")
            }
            vocabulary = Vocabulary(capacity: vocabObject.count)
            for (token, value) in vocabObject.entries {
                guard let id = value.int, id >= 0, id < Int(Int32.max) else {
                    throw LoRAMixerError.format("\(where_): vocab entry \(quoted(token)) has id \(value), expected a non-negative 32-bit integer")
                }
                vocabulary.append(token, id: Int32(id))
                guard vocabulary.arenaCount <= Vocabulary.maximumBytes else {
                    throw LoRAMixerError.format("\(where_): the vocabulary's tokens are longer than \(Vocabulary.maximumBytes) bytes in all")
                }
            }
            vocabulary.finish()  // the object's keys are unique
        }

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
                let name = Array("<0x".utf8) + [hex[byte >> 4], hex[byte & 15], UInt8(ascii: ">")]
                return name.withUnsafeBytes { vocabulary.id($0) }
            }
        } else {
            byteIDs = []
        }
        switch json["unk_token"] {
        case nil, .null?:
            unknownID = nil
        case .string(let unk)?:
            guard let id = vocabulary.id(unk) else {
                throw LoRAMixerError.format("\(where_): unk_token \(quoted(unk)) is not in the vocabulary")
            }
            unknownID = id
        case let other?:
            throw LoRAMixerError.format("\(where_): `unk_token` must be a string or null, found \(other.kindName)")
        }

        let mergeList: MergeList
        if let read = tables?.merges {
            mergeList = read
        } else {
            guard let entries = json["merges"]?.array else {
                throw LoRAMixerError.format("\(where_): `merges` must be an array, found \(json["merges"]?.kindName ?? "nothing")")
            }
            mergeList = MergeList(json: entries)
        }
        merges = try Self.resolve(mergeList, in: vocabulary, where: where_)

        var scalarIDs: [UInt32: Int32] = [:]
        vocabulary.forEach { token, id in
            guard let lead = token.first else { return }
            let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
            guard token.count == length else { return }
            var value = length == 1 ? UInt32(lead) : UInt32(lead) & (0x7F >> length)
            for byte in token.dropFirst() { value = value << 6 | UInt32(byte & 0x3F) }
            scalarIDs[value] = id
        }
        self.vocabulary = vocabulary
        self.scalarIDs = scalarIDs
    }

    /// The merges as (left id, right id) -> (rank, merged id); the first merge naming a token
    /// the vocabulary lacks, or making one, is an error, as is the list's first malformed entry
    /// (reported when the merges before it are fine).
    private static func resolve(_ list: MergeList, in vocabulary: Vocabulary, where where_: String) throws -> MergeTable {
        var merges = MergeTable(capacity: list.spans.count)
        var resolved: [(key: UInt64, rank: Int32, merged: Int32)] = []
        // in blocks: the tokens' hashes first, their slots touched together, then the lookups
        let block = 32
        var hashes = [UInt32](repeating: 0, count: 3 * block)
        try list.bytes.withUnsafeBytes { arena in
            try list.spans.withUnsafeBufferPointer { spans in
                func slices(_ span: MergeList.Span) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
                    (UnsafeRawBufferPointer(rebasing: arena[Int(span.leftStart)..<Int(span.leftEnd)]),
                     UnsafeRawBufferPointer(rebasing: arena[Int(span.rightStart)..<Int(span.rightEnd)]))
                }
                let empty = UnsafeRawBufferPointer(start: nil, count: 0)
                var start = 0
                while start < spans.count {
                    let end = min(start + block, spans.count)
                    hashes.withUnsafeMutableBufferPointer { hashes in
                        for index in start..<end {
                            let (left, right) = slices(spans[index])
                            let slot = 3 * (index - start)
                            hashes[slot] = Vocabulary.hash(left, empty)
                            hashes[slot + 1] = Vocabulary.hash(right, empty)
                            hashes[slot + 2] = Vocabulary.hash(left, right)
                        }
                        vocabulary.touch(hashes: UnsafeBufferPointer(rebasing: hashes[..<(3 * (end - start))]))
                    }
                    for rank in start..<end {
                        let (leftBytes, rightBytes) = slices(spans[rank])
                        let slot = 3 * (rank - start)
                        let left = vocabulary.id(hash: hashes[slot], leftBytes, empty)
                        let right = vocabulary.id(hash: hashes[slot + 1], rightBytes, empty)
                        guard let left, let right, let merged = vocabulary.id(hash: hashes[slot + 2], leftBytes, rightBytes) else {
                            let pair = (String(decoding: leftBytes, as: UTF8.self), String(decoding: rightBytes, as: UTF8.self))
                            let prefix = "\(where_): merge \(rank) (\(quoted(pair.0)), \(quoted(pair.1)))"
                            if left == nil || right == nil {
                                throw LoRAMixerError.format("\(prefix) names \(quoted(left == nil ? pair.0 : pair.1)), which is not in the vocabulary")
                            }
                            throw LoRAMixerError.format("\(prefix) makes \(quoted(pair.0 + pair.1)), which is not in the vocabulary")
                        }
                        resolved.append((MergeTable.key(left, right), Int32(rank), merged))
                    }
                    merges.insert(resolved)
                    resolved.removeAll(keepingCapacity: true)
                    start = end
                }
            }
        }
        if let problem = list.problem { throw LoRAMixerError.format("\(where_): \(problem.message)") }
        return merges
    }

    /// Appends the ids of one pre-tokenized word. A scalar missing from the vocabulary becomes
    /// its UTF-8 bytes' `<0xXX>` tokens with `byte_fallback` (when all exist), else `unk_token`
    /// (one for a run of them with `fuse_unk`), or is dropped when there is none, as `tokenizers`
    /// does.
    func encode(_ word: String, into output: inout [Int32]) {
        let key = ScalarString(word)
        if ignoreMerges, let id = vocabulary.id(word) {
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
            if let merge = merges.find(MergeTable.key(symbols[left], symbols[right])) { heap.push(.init(rank: merge.rank, position: left, merged: merge.merged)) }
        }
        for index in 0..<(count - 1) { candidate(index, index + 1) }
        while let top = heap.pop() {
            let left = top.position
            guard alive[left] else { continue }
            let right = next[left]
            guard right < count else { continue }
            guard let current = merges.find(MergeTable.key(symbols[left], symbols[right])), current.merged == top.merged else { continue }
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

/// The merges by their pair of ids: (left id << 32 | right id) -> (rank, merged id), an
/// open-addressing table (linear probing, at most 70% full) with a multiplicative hash. Built
/// in blocks whose slots are touched before the inserts, as `Vocabulary` is.
struct MergeTable: Sendable {
    private struct Slot {
        /// `empty` for a free slot (no pair of 32-bit ids below Int32.max has this key).
        var key: UInt64 = MergeTable.empty
        var rank: Int32 = 0
        var merged: Int32 = 0
    }

    private static let empty = UInt64.max
    private var slots: [Slot]
    private let shift: UInt64
    private(set) var count = 0

    init(capacity: Int) {
        var bits: UInt64 = 4
        while (1 << bits) * 7 < capacity * 10 { bits += 1 }
        slots = [Slot](repeating: Slot(), count: 1 << bits)
        shift = 64 - bits
    }

    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    private static func home(_ key: UInt64, _ shift: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    func find(_ key: UInt64) -> (rank: Int32, merged: Int32)? {
        slots.withUnsafeBufferPointer { slots in
            let mask = slots.count - 1
            var index = Self.home(key, shift)
            while true {
                let slot = slots[index]
                if slot.key == key { return (slot.rank, slot.merged) }
                if slot.key == Self.empty { return nil }
                index = (index + 1) & mask
            }
        }
    }

    /// Adds each pair that is not in the table yet (the first of several merges of one pair
    /// keeps its rank, as in `tokenizers`).
    mutating func insert(_ entries: [(key: UInt64, rank: Int32, merged: Int32)]) {
        if (count + entries.count) * 10 > slots.count * 7 { grow(to: count + entries.count) }
        var sink: UInt64 = 0
        var added = 0
        let shift = shift
        slots.withUnsafeMutableBufferPointer { slots in
            for entry in entries { sink &+= slots[Self.home(entry.key, shift)].key }
            let mask = slots.count - 1
            for entry in entries {
                var index = Self.home(entry.key, shift)
                while slots[index].key != Self.empty && slots[index].key != entry.key { index = (index + 1) & mask }
                if slots[index].key == Self.empty {
                    slots[index] = Slot(key: entry.key, rank: entry.rank, merged: entry.merged)
                    added += 1
                }
            }
        }
        count += added
        Vocabulary.consume(UInt32(truncatingIfNeeded: sink))
    }

    private mutating func grow(to capacity: Int) {
        var larger = MergeTable(capacity: capacity * 2)
        larger.insert(slots.filter { $0.key != Self.empty }.map { ($0.key, $0.rank, $0.merged) })
        self = larger
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
