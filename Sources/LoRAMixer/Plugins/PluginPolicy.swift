import Crypto
import Glibc

/// What a mixer accepts as a plugin file. By default: any file that neither it nor its folder is
/// writable by group or others (such a file could be swapped by another user).
public struct PluginPolicy: Sendable, Equatable {
    /// When set, the file's SHA-256 (lowercase hex) must be one of these.
    public var allowedSHA256: Set<String>?
    /// Accept a file or folder writable by group or others.
    public var allowWritable: Bool

    public init(allowedSHA256: Set<String>? = nil, allowWritable: Bool = false) {
        self.allowedSHA256 = allowedSHA256.map { Set($0.map { $0.lowercased() }) }
        self.allowWritable = allowWritable
    }

    /// Throws `.plugin` naming the rule the file open as `descriptor` (opened from `path`) breaks.
    /// Everything is read from the descriptor, which is then what gets loaded: the checked bytes
    /// and the loaded bytes are the same file whatever happens at `path` meanwhile.
    func check(descriptor: Int32, path: String) throws {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw posixError("\(path): cannot stat plugin file") }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw LoRAMixerError.plugin("\(path): not a regular file")
        }
        if !allowWritable {
            let folder = SystemFiles.folder(of: path)
            var folderInfo = stat()
            let folderMode: mode_t? = stat(folder, &folderInfo) == 0 ? folderInfo.st_mode : nil
            for (what, target, mode) in [("file", path, Optional(info.st_mode)), ("folder", folder, folderMode)] {
                guard let mode else { continue }
                if mode & (S_IWGRP | S_IWOTH) != 0 {
                    throw LoRAMixerError.plugin("\(path): the plugin \(what) \(target) is writable by group or others (mode \(String(mode & 0o777, radix: 8))); refused unless the policy allows writable plugins")
                }
            }
        }
        if let allowed = allowedSHA256 {
            let digest = try Self.sha256(descriptor: descriptor, path: path)
            guard allowed.contains(digest) else {
                throw LoRAMixerError.plugin("\(path): SHA-256 \(digest) is not among the \(allowed.count) allowed by the policy")
            }
        }
    }

    /// The SHA-256 (lowercase hex) of the whole file open as `descriptor`, read from offset 0.
    static func sha256(descriptor: Int32, path: String) throws -> String {
        var hasher = SHA256()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var offset = 0
        while true {
            let count = pread(descriptor, buffer.baseAddress, chunk, off_t(offset))
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw posixError("\(path): cannot read plugin file") }
            if count == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            offset += count
        }
        return SystemFiles.hex(hasher.finalize())
    }
}
