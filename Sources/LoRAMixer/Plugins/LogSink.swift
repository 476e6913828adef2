#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Where plugin log messages go: a host-installed handler (lmx_set_log_callback), or stderr.
@_spi(CABI) public enum LogSink {
    /// level (LMX_LOG_*), source (the plugin's id), message.
    public typealias Handler = @Sendable (UInt32, String, String) -> Void

    private static let handler = Mutex<Handler?>(nil)

    /// Installs `handler` for every later message; nil restores stderr.
    public static func set(_ handler: Handler?) {
        self.handler.withLock { $0 = handler }
    }

    /// Sends one message to the handler, which runs on the calling thread outside any lock.
    static func emit(level: UInt32, source: String, _ message: String) {
        if let handler = handler.withLock({ $0 }) {
            handler(level, source, message)
            return
        }
        let names = ["debug", "info", "warning", "error"]
        let name = Int(level) < names.count ? names[Int(level)] : "level \(level)"
        fputs("[loramixer plugin \(source)] \(name): \(message)\n", stderr)
    }
}
