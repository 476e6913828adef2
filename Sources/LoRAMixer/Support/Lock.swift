import Synchronization

/// A mutual-exclusion lock with `NSLock.withLock`'s shape, over `Synchronization.Mutex` (so the
/// core needs no Foundation).
final class Lock: Sendable {
    private let mutex = Mutex(())

    func withLock<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        try mutex.withLock { (_: inout ()) throws(Failure) -> Result in try body() }
    }
}
