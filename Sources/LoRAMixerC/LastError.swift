import Glibc

/// The calling thread's last error message, as a C string the library owns until the next
/// failure on that thread (or the thread's exit).
enum LastError {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    private static let empty: StaticString = ""

    static func set(_ message: String) {
        let copy = strdup(message)
        if let previous = pthread_getspecific(key) { free(previous) }
        pthread_setspecific(key, copy)
    }

    static var current: UnsafePointer<CChar> {
        if let message = pthread_getspecific(key) {
            return UnsafePointer(message.assumingMemoryBound(to: CChar.self))
        }
        return UnsafeRawPointer(empty.utf8Start).assumingMemoryBound(to: CChar.self)
    }
}
