/// Bytes -> Int32, keyed by exact bytes: the index of large JSON objects (a 150k-token
/// vocabulary) and of a BPE vocabulary while its merges are resolved (three lookups per merge,
/// the third of a concatenation that is never built). `[String: _]` hashes with SipHash after a
/// Unicode normalization check and compares under canonical equivalence; this table hashes the
/// bytes with one multiply per 8 of them and compares bytes. Keys of up to 16 bytes live in the
/// slot itself (one cache miss per lookup), longer ones in a shared byte buffer. Open
/// addressing, linear probing, at most 70% full (a 150k-key table is 8 MB: lookups of random
/// keys miss the caches, so a smaller table is faster than a less loaded one).
struct ByteKeyTable: Sendable {
    private struct Slot {
        /// The key's first 16 bytes, little-endian, zero-padded.
        var low: UInt64 = 0
        var high: UInt64 = 0
        var hash: UInt32 = 0
        /// Key length + 1; 0 = empty slot.
        var lengthPlusOne: Int32 = 0
        var value: Int32 = 0
        /// Where bytes 16... of a longer key start in `tails`.
        var tail: Int32 = 0
    }

    private var slots: [Slot]
    private var tails: [UInt8] = []
    private(set) var count = 0

    init(capacity: Int = 0) {
        var size = 16
        while size * 7 < capacity * 10 { size <<= 1 }
        slots = [Slot](repeating: Slot(), count: size)
    }

    /// Adds `key` -> `value` unless the key is present; returns whether it was added.
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, value: Int32) -> Bool {
        let probe = Probe(key, UnsafeBufferPointer(start: nil, count: 0))
        if find(probe) != nil { return false }
        if (count + 1) * 10 > slots.count * 7 { grow() }
        var slot = Slot(low: probe.low, high: probe.high, hash: probe.hash,
                        lengthPlusOne: Int32(truncatingIfNeeded: key.count + 1), value: value, tail: Int32(truncatingIfNeeded: tails.count))
        if key.count > 16 { tails.append(contentsOf: UnsafeBufferPointer(rebasing: key[16...])) } else { slot.tail = 0 }
        place(slot)
        count += 1
        return true
    }

    mutating func insert(_ key: String, value: Int32) -> Bool {
        var key = key
        return key.withUTF8 { insert($0, value: value) }
    }

    /// The value of the key made of `first` followed by `second`.
    func find(_ first: UnsafeBufferPointer<UInt8>, _ second: UnsafeBufferPointer<UInt8>) -> Int32? {
        find(Probe(first, second))
    }

    func find(_ key: String) -> Int32? {
        var key = key
        return key.withUTF8 { find($0, UnsafeBufferPointer(start: nil, count: 0)) }
    }

    private mutating func place(_ slot: Slot) {
        let mask = slots.count - 1
        var index = Int(slot.hash) & mask
        slots.withUnsafeMutableBufferPointer { slots in
            while slots[index].lengthPlusOne != 0 { index = (index + 1) & mask }
            slots[index] = slot
        }
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(), count: old.count * 2)
        for slot in old where slot.lengthPlusOne != 0 { place(slot) }
    }

    /// A key as looked up: its hash, length, first 16 bytes and the two buffers it spans.
    private struct Probe {
        let first: UnsafeBufferPointer<UInt8>
        let second: UnsafeBufferPointer<UInt8>
        var low: UInt64 = 0
        var high: UInt64 = 0
        var hash: UInt32 = 0
        let length: Int

        init(_ first: UnsafeBufferPointer<UInt8>, _ second: UnsafeBufferPointer<UInt8>) {
            self.first = first
            self.second = second
            length = first.count + second.count
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            var word: UInt64 = 0
            var shift: UInt64 = 0
            var index = 0
            func add(_ byte: UInt8) {
                word |= UInt64(byte) << shift
                shift += 8
                if shift == 64 {
                    if index == 8 { low = word } else if index == 16 { high = word }
                    state = (state ^ word) &* 0xFF51_AFD7_ED55_8CCD
                    state ^= state >> 32
                    word = 0
                    shift = 0
                }
            }
            for byte in first { index += 1; add(byte) }
            for byte in second { index += 1; add(byte) }
            if shift != 0 {
                if index <= 8 { low = word } else if index <= 16 { high = word }
            }
            state = (state ^ word ^ (UInt64(length) << 56)) &* 0xC4CE_B9FE_1A85_EC53
            state ^= state >> 29
            state = state &* 0xFF51_AFD7_ED55_8CCD
            state ^= state >> 32
            hash = UInt32(truncatingIfNeeded: state)
        }

        /// Byte `index` of the key (index < length).
        func byte(_ index: Int) -> UInt8 {
            index < first.count ? first[index] : second[index - first.count]
        }
    }

    private func find(_ probe: Probe) -> Int32? {
        let mask = slots.count - 1
        var index = Int(probe.hash) & mask
        let lengthPlusOne = Int32(truncatingIfNeeded: probe.length + 1)
        return slots.withUnsafeBufferPointer { slots in
            while slots[index].lengthPlusOne != 0 {
                let slot = slots[index]
                if slot.hash == probe.hash, slot.lengthPlusOne == lengthPlusOne, slot.low == probe.low, slot.high == probe.high,
                   probe.length <= 16 || tailEqual(probe, at: Int(slot.tail)) {
                    return slot.value
                }
                index = (index + 1) & mask
            }
            return nil
        }
    }

    private func tailEqual(_ probe: Probe, at start: Int) -> Bool {
        tails.withUnsafeBufferPointer { tails in
            for index in 16..<probe.length where tails[start + index - 16] != probe.byte(index) { return false }
            return true
        }
    }
}
