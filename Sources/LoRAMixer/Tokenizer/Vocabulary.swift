import Synchronization

/// A BPE vocabulary: token -> id keyed by the token's exact UTF-8 bytes (scalar-exact, as
/// `ScalarString`: "é" and "e\u{301}" are distinct tokens), and id -> token for decoding.
/// The tokens' bytes live in one arena; an open-addressing table (linear probing, at most 70%
/// full) holds each token's hash, place in the arena and id, so a lookup hashes the bytes once
/// and compares bytes, with no `String` made. A key may be looked up as two slices (a merge's
/// left and right tokens, whose concatenation is never built).
///
/// Tokens are appended first and the table is built once they are all in (`finish`), sized
/// up front and filled in blocks whose slots are touched ahead of the inserts: a 150k-token
/// table (4 MB) misses the caches on nearly every access, and independent loads overlap those
/// misses where one insert after another would wait for each in turn.
struct Vocabulary: Sendable {
    private struct Slot {
        /// The key's hash; 0 marks an empty slot (a key hashing to 0 is stored as 1).
        var hash: UInt32 = 0
        var offset: UInt32 = 0
        var length: UInt32 = 0
        var id: Int32 = 0
    }

    /// A token as appended, for the id -> token direction (in insertion order, so that the last
    /// of several tokens sharing an id is the one decoding gives, whatever the table's layout).
    private struct Entry {
        var offset: UInt32
        var length: UInt32
        var id: Int32
        var hash: UInt32
    }

    private var bytes: [UInt8] = []
    private var slots: [Slot] = []
    private var entries: [Entry] = []
    /// id -> index in `entries`, dense when the ids are (nearly) contiguous, else `sparseIndex`
    /// (a hostile file with one huge id must not make us allocate a table that large).
    private var denseIndex: [Int32] = []
    private var sparseIndex: [Int32: Int32] = [:]

    var count: Int { entries.count }

    init(capacity: Int = 0) {
        entries.reserveCapacity(capacity)
    }

    /// The largest arena a table holds (offsets are 32-bit).
    static let maximumBytes = Int(UInt32.max)

    /// Appends the token `key` with `id` (to be looked up once `finish` has run).
    mutating func append(_ key: String, id: Int32) {
        bytes.append(contentsOf: key.utf8)
        appendLast(count: key.utf8.count, id: id)
    }

    /// Appends bytes to the arena, to become a token with `appendLast` (readers decode a token
    /// straight into the arena).
    mutating func withArena<R>(_ body: (inout [UInt8]) throws -> R) rethrows -> R {
        try body(&bytes)
    }

    /// The arena's length: where the next token's bytes start.
    var arenaCount: Int { bytes.count }

    /// Makes the last `length` bytes of the arena a token with `id`.
    mutating func appendLast(count length: Int, id: Int32) {
        let offset = bytes.count - length
        let hash = bytes.withUnsafeBytes { Self.hash(UnsafeRawBufferPointer(rebasing: $0[offset...]), UnsafeRawBufferPointer(start: nil, count: 0)) }
        entries.append(Entry(offset: UInt32(truncatingIfNeeded: offset), length: UInt32(truncatingIfNeeded: length), id: id, hash: hash))
    }

    /// Builds the lookup table and the id index. Returns the position (in appending order) of
    /// the first token that repeats an earlier one, which is then not in the table.
    @discardableResult
    mutating func finish() -> Int? {
        var size = 64
        while size * 7 < entries.count * 10 { size <<= 1 }
        slots = [Slot](repeating: Slot(), count: size)
        let mask = size - 1
        var firstRepeat: Int?
        let block = 32
        var sink: UInt32 = 0
        bytes.withUnsafeBytes { arena in
            slots.withUnsafeMutableBufferPointer { slots in
                entries.withUnsafeBufferPointer { entries in
                    var start = 0
                    while start < entries.count {
                        let end = min(start + block, entries.count)
                        for index in start..<end { sink &+= slots[Int(entries[index].hash) & mask].hash }
                        for index in start..<end {
                            let entry = entries[index]
                            let key = UnsafeRawBufferPointer(rebasing: arena[Int(entry.offset)..<Int(entry.offset) + Int(entry.length)])
                            var slot = Int(entry.hash) & mask
                            var repeated = false
                            while slots[slot].hash != 0 {
                                let other = slots[slot]
                                if other.hash == entry.hash, other.length == entry.length,
                                   Self.equal(UnsafeRawBufferPointer(rebasing: arena[Int(other.offset)..<Int(other.offset) + Int(other.length)]), key, UnsafeRawBufferPointer(start: nil, count: 0)) {
                                    repeated = true
                                    break
                                }
                                slot = (slot + 1) & mask
                            }
                            if repeated {
                                if firstRepeat == nil { firstRepeat = index }
                            } else {
                                slots[slot] = Slot(hash: entry.hash, offset: entry.offset, length: entry.length, id: entry.id)
                            }
                        }
                        start = end
                    }
                }
            }
        }
        Self.consume(sink)
        indexIDs()
        return firstRepeat
    }

    /// The bytes of the token appended at `position`, as text (for error messages).
    func text(at position: Int) -> String {
        let entry = entries[position]
        return String(decoding: bytes[Int(entry.offset)..<Int(entry.offset) + Int(entry.length)], as: UTF8.self)
    }

    /// Keeps the loads that touch slots ahead of their use from being optimized away: their sum
    /// is stored where the optimizer cannot see it is never read (a relaxed atomic store, one
    /// per block).
    static func consume(_ value: UInt32) {
        touchSink.store(value, ordering: .relaxed)
    }

    /// The id of the token made of `first` followed by `second`.
    func id(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> Int32? {
        id(hash: Self.hash(first, second), first, second)
    }

    func id(_ text: String) -> Int32? {
        var text = text
        return text.withUTF8 { id(UnsafeRawBufferPointer($0)) }
    }

    subscript(key: ScalarString) -> Int32? { id(key.text) }

    /// Loads the slots (and the tokens they start with) of keys with these hashes, so that
    /// looking them up next finds them in the cache.
    func touch(hashes: UnsafeBufferPointer<UInt32>) {
        guard !slots.isEmpty else { return }
        let mask = slots.count - 1
        var sink: UInt32 = 0
        bytes.withUnsafeBytes { arena in
            slots.withUnsafeBufferPointer { slots in
                for hash in hashes { sink &+= slots[Int(hash) & mask].hash }
                guard !arena.isEmpty else { return }
                for hash in hashes { sink &+= UInt32(arena[min(Int(slots[Int(hash) & mask].offset), arena.count - 1)]) }
            }
        }
        Self.consume(sink)
    }

    /// Calls `body` with each token's bytes and id, in appending order.
    func forEach(_ body: (UnsafeRawBufferPointer, Int32) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { arena in
            for entry in entries {
                try body(UnsafeRawBufferPointer(rebasing: arena[Int(entry.offset)..<Int(entry.offset) + Int(entry.length)]), entry.id)
            }
        }
    }

    /// The number of distinct ids (fewer than `count` when tokens share one).
    private(set) var distinctIDCount = 0
    /// The largest id (nil for an empty vocabulary).
    private(set) var largestID: Int32?

    /// Builds the id -> token index.
    private mutating func indexIDs() {
        var largest: Int32 = -1
        for entry in entries where entry.id > largest { largest = entry.id }
        largestID = largest >= 0 ? largest : nil
        denseIndex = []
        sparseIndex = [:]
        if Int(largest) < 2 * entries.count + 1024 {
            denseIndex = [Int32](repeating: -1, count: Int(largest) + 1)
            var distinct = 0
            denseIndex.withUnsafeMutableBufferPointer { index in
                for (position, entry) in entries.enumerated() {
                    if index[Int(entry.id)] < 0 { distinct += 1 }
                    index[Int(entry.id)] = Int32(position)
                }
            }
            distinctIDCount = distinct
        } else {
            sparseIndex.reserveCapacity(entries.count)
            for (index, entry) in entries.enumerated() { sparseIndex[entry.id] = Int32(index) }
            distinctIDCount = sparseIndex.count
        }
    }

    private func entryIndex(_ id: Int32) -> Int? {
        if id >= 0, Int(id) < denseIndex.count {
            let index = denseIndex[Int(id)]
            return index >= 0 ? Int(index) : nil
        }
        return sparseIndex[id].map(Int.init)
    }

    func contains(id: Int32) -> Bool { entryIndex(id) != nil }

    /// The token's bytes (nil for an id no token has).
    func bytes(of id: Int32) -> [UInt8]? {
        guard let index = entryIndex(id) else { return nil }
        let entry = entries[index]
        return Array(bytes[Int(entry.offset)..<Int(entry.offset) + Int(entry.length)])
    }

    /// The token's text (nil for an id no token has).
    func token(_ id: Int32) -> String? {
        guard let index = entryIndex(id) else { return nil }
        let entry = entries[index]
        return bytes.withUnsafeBytes { arena in
            String(decoding: UnsafeRawBufferPointer(rebasing: arena[Int(entry.offset)..<Int(entry.offset) + Int(entry.length)]), as: UTF8.self)
        }
    }

    /// The id of the key `first + second` whose hash is `hash`.
    func id(hash: UInt32, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> Int32? {
        guard !slots.isEmpty else { return nil }
        let length = first.count + second.count
        let mask = slots.count - 1
        var index = Int(hash) & mask
        return bytes.withUnsafeBytes { arena in
            slots.withUnsafeBufferPointer { slots in
                while true {
                    let slot = slots[index]
                    if slot.hash == 0 { return nil }
                    if slot.hash == hash, Int(slot.length) == length,
                       Self.equal(UnsafeRawBufferPointer(rebasing: arena[Int(slot.offset)..<Int(slot.offset) + length]), first, second) {
                        return slot.id
                    }
                    index = (index + 1) & mask
                }
            }
        }
    }

    private static func equal(_ stored: UnsafeRawBufferPointer, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        for byte in first {
            if stored[index] != byte { return false }
            index += 1
        }
        for byte in second {
            if stored[index] != byte { return false }
            index += 1
        }
        return true
    }

    /// FNV-1a over the bytes of `first` then `second`, then a 64-bit finalizer (murmur3's).
    static func hash(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> UInt32 {
        var state: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in first { state = (state ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        for byte in second { state = (state ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        state ^= state >> 33
        state = state &* 0xFF51_AFD7_ED55_8CCD
        state ^= state >> 33
        state = state &* 0xC4CE_B9FE_1A85_EC53
        state ^= state >> 33
        let hash = UInt32(truncatingIfNeeded: state)
        return hash == 0 ? 1 : hash
    }
}

/// Where `Vocabulary.consume` stores what the touching loads read.
private let touchSink = Atomic<UInt32>(0)
