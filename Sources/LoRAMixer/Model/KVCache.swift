import Glibc

/// Keys and values of every processed position. Per layer and KV head, positions are contiguous
/// (`[layer][kvHead][position][headDim]`), so attention streams one head's keys and values in
/// order. The memory for `capacity` positions is reserved up front but only touched as positions
/// are written, so an unused context costs address space, not resident memory.
final class KVCache {
    let layers: Int
    let kvHeads: Int
    let headDim: Int
    let capacity: Int
    private let keys: UnsafeMutablePointer<Float>
    private let values: UnsafeMutablePointer<Float>
    private(set) var count = 0

    private let byteCount: Int

    /// Reserves address space for `capacity` positions (mmap with MAP_NORESERVE: pages become
    /// memory only when written); throws `.outOfMemory` if even that is refused.
    init(layers: Int, capacity: Int, kvHeads: Int, headDim: Int) throws {
        (self.layers, self.kvHeads, self.headDim, self.capacity) = (layers, kvHeads, headDim, capacity)
        let byteCount = try checkedProduct([layers, kvHeads, capacity, headDim, MemoryLayout<Float>.stride], "KV cache")
        self.byteCount = byteCount
        let keys = try Self.reserve(byteCount, positions: capacity)
        do {
            values = try Self.reserve(byteCount, positions: capacity)
        } catch {
            munmap(keys, byteCount)
            throw error
        }
        self.keys = keys
    }

    private static func reserve(_ byteCount: Int, positions: Int) throws -> UnsafeMutablePointer<Float> {
        let address = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let address, address != MAP_FAILED else {
            throw LoRAMixerError.outOfMemory("cannot reserve \(byteCount) bytes for the KV cache of \(positions) positions (\(String(cString: strerror(errno)))); use a smaller n_ctx")
        }
        return address.assumingMemoryBound(to: Float.self)
    }

    deinit {
        munmap(keys, byteCount)
        munmap(values, byteCount)
    }

    var remaining: Int { capacity - count }

    /// Keys (or values) of `layer`, KV head `head`: `[capacity, headDim]`, positions 0 ..< count valid.
    func keys(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { keys + (layer * kvHeads + head) * capacity * headDim }
    func values(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { values + (layer * kvHeads + head) * capacity * headDim }

    /// Writes the keys and values of `tokens` new positions of `layer` after those held; they
    /// count once `commit` runs for the whole pass.   k, v: [tokens, kvHeads, headDim]
    func append(layer: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, tokens: Int) {
        for head in 0..<kvHeads {
            let (keyRows, valueRows) = (keys(layer: layer, head: head), values(layer: layer, head: head))
            for t in 0..<tokens {
                let source = (t * kvHeads + head) * headDim
                (keyRows + (count + t) * headDim).update(from: k + source, count: headDim)
                (valueRows + (count + t) * headDim).update(from: v + source, count: headDim)
            }
        }
    }

    func commit(tokens: Int) { count += tokens }

    /// Forgets every position from `count` on.
    func truncate(to count: Int) { self.count = min(self.count, count) }

    func reset() { count = 0 }
}
