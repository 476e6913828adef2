internal import CKernels

/// A persistent pool of worker threads (the C pool in CKernels). Work is cut into chunks that the
/// calling thread and the workers claim as they come free, so a worker that lost its core to
/// another process delays only the chunk it holds. Owned by one session, so used by one thread at
/// a time.
final class ThreadPool {
    private let pool: OpaquePointer?
    let threads: Int

    init(threads: Int) {
        pool = threads > 1 ? lmxk_pool_create(Int32(threads)) : nil
        self.threads = pool == nil ? 1 : threads
    }

    deinit { lmxk_pool_free(pool) }

    /// Calls `body(chunk)` for every chunk in 0 ..< chunks, in parallel, and returns when all are done.
    func run(chunks: Int, _ body: (Int) -> Void) {
        guard let pool, chunks > 1 else { return (0..<max(chunks, 0)).forEach(body) }
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { context in
                lmxk_pool_run(pool, Int32(chunks), { context, chunk, _ in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(chunk))
                }, context)
            }
        }
    }

    /// Splits `0 ..< total` into contiguous ranges (multiples of `granule`, a few per thread) and
    /// runs `body` on each.
    func parallelRanges(_ total: Int, granule: Int = 1, _ body: (Range<Int>) -> Void) {
        let units = (total + granule - 1) / granule
        guard threads > 1, units > 1 else { return total > 0 ? body(0..<total) : () }
        let chunks = min(units, threads * 4)
        run(chunks: chunks) { chunk in
            let begin = min(total, units * chunk / chunks * granule)
            let end = min(total, units * (chunk + 1) / chunks * granule)
            if begin < end { body(begin..<end) }
        }
    }
}
