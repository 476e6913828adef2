internal import CKernels

/// A persistent pool of worker threads (the C pool in CKernels): `parallel` runs a body once per
/// thread, the calling thread included, and returns when all are done. Owned by one session, so
/// it is used by one thread at a time.
final class ThreadPool {
    private let pool: OpaquePointer?
    let threads: Int

    init(threads: Int) {
        pool = threads > 1 ? lmxk_pool_create(Int32(threads)) : nil
        self.threads = pool == nil ? 1 : threads
    }

    deinit { lmxk_pool_free(pool) }

    /// Calls `body(index, count)` for index 0 ..< count (count = `threads`), in parallel.
    func parallel(_ body: (Int, Int) -> Void) {
        guard let pool else { return body(0, 1) }
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { context in
                lmxk_pool_run(pool, { context, index, count in
                    context!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(index), Int(count))
                }, context)
            }
        }
    }

    /// Splits `0 ..< total` into one contiguous range per thread (in multiples of `granule`) and
    /// runs `body` on each non-empty range.
    func parallelRanges(_ total: Int, granule: Int = 1, _ body: (Range<Int>) -> Void) {
        guard threads > 1, total > granule else { return body(0..<total) }
        let units = (total + granule - 1) / granule
        parallel { index, count in
            let begin = min(total, units * index / count * granule)
            let end = min(total, units * (index + 1) / count * granule)
            if begin < end { body(begin..<end) }
        }
    }
}
