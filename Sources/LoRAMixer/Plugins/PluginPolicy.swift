import Crypto
import Foundation

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

    /// Throws `.plugin` naming the rule `path` breaks.
    func check(path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw LoRAMixerError.io("\(path): cannot open plugin file (\(String(cString: strerror(errno))))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw LoRAMixerError.plugin("\(path): not a regular file")
        }
        if !allowWritable {
            let folder = (path as NSString).deletingLastPathComponent
            for (what, target) in [("file", path), ("folder", folder.isEmpty ? "." : folder)] {
                var status = stat()
                guard stat(target, &status) == 0 else { continue }
                if status.st_mode & (S_IWGRP | S_IWOTH) != 0 {
                    throw LoRAMixerError.plugin("\(path): the plugin \(what) \(target) is writable by group or others (mode \(String(status.st_mode & 0o777, radix: 8))); refused unless the policy allows writable plugins")
                }
            }
        }
        if let allowed = allowedSHA256 {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw LoRAMixerError.io("\(path): cannot read plugin file")
            }
            let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
            guard allowed.contains(digest) else {
                throw LoRAMixerError.plugin("\(path): SHA-256 \(digest) is not among the \(allowed.count) allowed by the policy")
            }
        }
    }
}
