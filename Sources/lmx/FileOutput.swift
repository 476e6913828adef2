import Glibc

/// Writes `bytes` to `path` (created or truncated, mode 0644), with the system's reason on failure.
func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw CLIError("\(path): cannot create file (\(String(cString: strerror(errno))))") }
    var written = 0
    var failure: Int32 = 0
    bytes.withUnsafeBytes { buffer in
        while written < buffer.count {
            let count = write(descriptor, buffer.baseAddress! + written, buffer.count - written)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { failure = count < 0 ? errno : EIO; return }
            written += count
        }
    }
    let closed = close(descriptor)
    if failure == 0 && closed != 0 { failure = errno }
    guard failure == 0 else { throw CLIError("\(path): cannot write file (\(String(cString: strerror(failure))))") }
}
