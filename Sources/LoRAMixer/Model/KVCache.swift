/// Keys and values of every processed position, per layer: `[positions, kvHeads, headDim]`.
/// Grows as tokens arrive, up to `capacity` positions.
struct KVCache {
    let capacity: Int
    let rowSize: Int
    private(set) var keys: [[Float]]
    private(set) var values: [[Float]]
    private(set) var count = 0

    init(layers: Int, capacity: Int, kvDim: Int) {
        self.capacity = capacity
        self.rowSize = kvDim
        keys = Array(repeating: [], count: layers)
        values = Array(repeating: [], count: layers)
    }

    var remaining: Int { capacity - count }

    /// Appends rows of keys and values for `layer`; `commit` advances `count` once every layer
    /// has its rows.
    mutating func append(layer: Int, keys newKeys: UnsafeBufferPointer<Float>, values newValues: UnsafeBufferPointer<Float>) {
        keys[layer].append(contentsOf: newKeys)
        values[layer].append(contentsOf: newValues)
    }

    mutating func commit(tokens: Int) { count += tokens }

    /// Forgets every position from `count` on (rows of a pass that did not complete, too).
    mutating func truncate(to count: Int) {
        for layer in keys.indices {
            keys[layer].removeSubrange((count * rowSize)...)
            values[layer].removeSubrange((count * rowSize)...)
        }
        self.count = count
    }

    mutating func reset() {
        for layer in keys.indices {
            keys[layer].removeAll(keepingCapacity: true)
            values[layer].removeAll(keepingCapacity: true)
        }
        count = 0
    }
}
