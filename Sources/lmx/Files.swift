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

/// The whole file, or nil when it cannot be opened or read (a folder included).
func readFile(_ path: String) -> [UInt8]? {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { return nil }
        if count == 0 { return bytes }
        bytes += chunk[..<count]
    }
}

/// What is at `path`, symbolic links followed: nil when nothing is (or a link leads nowhere).
enum FileKind { case file, folder }

func fileKind(_ path: String) -> FileKind? {
    var status = stat()
    guard stat(path, &status) == 0 else { return nil }
    return status.st_mode & S_IFMT == S_IFDIR ? .folder : .file
}

/// `text` on stderr at once (unbuffered, like the one-line error report it carries).
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let count = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress!, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return }
        bytes = bytes.dropFirst(count)
    }
}
