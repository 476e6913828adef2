import Glibc

/// How a file's bytes are brought into memory.
public enum LoadMode: Sendable {
    /// Mapped read-only: pages load on first touch and are shared with the page cache, so
    /// opening a multi-gigabyte model is instant. The file must not be truncated while open.
    case mapped
    /// Read into a private 64-byte-aligned buffer: immune to later changes to the file.
    case copied
}

/// A whole file's bytes, mapped or copied, released when the last reference goes away.
/// Tensor views hold a reference to keep their bytes valid. Immutable after init.
final class FileBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    private let isMapped: Bool

    /// Opens `path`; a file shorter than `minimumSize` is a format error raised before any
    /// mapping (mmap refuses zero lengths, and such a file cannot be valid anyway).
    init(path: String, mode: LoadMode, minimumSize: Int) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw posixError("\(path): cannot open") }
        defer { close(descriptor) }

        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw posixError("\(path): cannot stat") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw LoRAMixerError.io("\(path): not a regular file") }
        let size = Int(status.st_size)
        guard size >= minimumSize else {
            throw LoRAMixerError.format("\(path): file is \(size) bytes, expected at least \(minimumSize)")
        }
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            isMapped = false
            return
        }

        switch mode {
        case .mapped:
            guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
                throw posixError("\(path): cannot map \(size) bytes")
            }
            bytes = UnsafeRawBufferPointer(start: address, count: size)
            isMapped = true
        case .copied:
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
            do {
                try Self.readFully(descriptor, into: buffer, path: path)
            } catch {
                buffer.deallocate()
                throw error
            }
            bytes = UnsafeRawBufferPointer(buffer)
            isMapped = false
        }
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        } else {
            base.deallocate()
        }
    }

    private static func readFully(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < buffer.count {
            let count = pread(descriptor, buffer.baseAddress.map { $0 + offset }, buffer.count - offset, off_t(offset))
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw posixError("\(path): cannot read") }
            guard count > 0 else {
                throw LoRAMixerError.io("\(path): file shrank to \(offset) bytes while being read (expected \(buffer.count))")
            }
            offset += count
        }
    }
}

/// An i/o error carrying the system's reason, e.g. "x.safetensors: cannot open (No such file or directory)".
func posixError(_ message: String, code: Int32 = errno) -> LoRAMixerError {
    .io("\(message) (\(String(cString: strerror(code))))")
}
