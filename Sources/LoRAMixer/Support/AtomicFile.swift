import Glibc

/// Writes files so that a reader, a crash or a kill never sees a half-written one: the bytes go
/// to a temporary file in the target's folder, which is synced and then renamed over the target.
enum AtomicFile {
    /// Writes `chunks` in order to a temporary file next to `path`, syncs it, renames it over
    /// `path` and syncs the folder so the rename itself survives a crash.
    static func write(_ chunks: [[UInt8]], to path: String) throws {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? "./"
        let fileName = slash.map { path[path.index(after: $0)...] } ?? path[...]
        let temporary = "\(directory).\(fileName).tmp-\(getpid())-\(UInt32.random(in: .min ... .max))"

        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw posixError("\(path): cannot create temporary file \(temporary)") }
        do {
            defer { close(descriptor) }
            for chunk in chunks {
                try chunk.withUnsafeBytes { try writeFully(descriptor, $0, path: path) }
            }
            guard fsync(descriptor) == 0 else { throw posixError("\(path): cannot sync") }
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let failure = posixError("\(path): cannot rename \(temporary) into place")
            unlink(temporary)
            throw failure
        }
        let folder = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard folder >= 0 else { throw posixError("\(directory): cannot open to sync") }
        defer { close(folder) }
        guard fsync(folder) == 0 else { throw posixError("\(directory): cannot sync") }
    }

    private static func writeFully(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let count = Glibc.write(descriptor, bytes.baseAddress.map { $0 + offset }, bytes.count - offset)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw posixError("\(path): cannot write") }
            offset += count
        }
    }

    /// Creates `path` and any missing parents (like `mkdir -p`), saying which component failed and why.
    static func createDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            var status = stat()
            if stat(prefix, &status) == 0 {
                guard status.st_mode & S_IFMT == S_IFDIR else {
                    throw LoRAMixerError.io("\(path): cannot create the folder: '\(prefix)' exists and is not a folder")
                }
            } else if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw posixError("\(path): cannot create the folder '\(prefix)'")
            }
            prefix += "/"
        }
    }

    /// Removes temporary files a killed writer left in `directory` (`.NAME.tmp-PID-RANDOM` whose
    /// process is gone); files of a live process are left alone.
    static func removeStaleTemporaries(in directory: String) {
        guard let names = SystemFiles.names(in: directory) else { return }
        for name in names where name.hasPrefix(".") {
            guard let marker = name.ranges(of: ".tmp-").last,
                  let pid = name[marker.upperBound...].split(separator: "-").first.flatMap({ Int32($0) }),
                  kill(pid, 0) != 0 && errno == ESRCH else { continue }
            unlink(directory + "/" + name)
        }
    }

    static func write(_ text: String, to path: String) throws {
        try write([Array(text.utf8)], to: path)
    }
}
