internal import CKernels
import Glibc

/// The few file-system and process facts the core needs, from Glibc directly: the library links
/// no Foundation (and so no ICU). Every failure is an `.io` error naming the path and the system's
/// reason.
enum SystemFiles {
    /// `directory/name`, like `NSString.appendingPathComponent` for the plain names used here.
    static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The folder part of `path` (`"."` when it has none).
    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = String(path[..<slash])
        return folder.isEmpty ? "/" : folder
    }

    static func exists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0
    }

    /// Checks that `directory` is an existing folder, so that a wrong path is reported as such
    /// rather than as a file missing inside it. `what` names the folder's role ("model folder").
    static func requireFolder(_ directory: String, _ what: String) throws {
        var status = stat()
        guard stat(directory, &status) == 0 else {
            throw LoRAMixerError.io("\(directory): \(what) does not exist (\(String(cString: strerror(errno))))")
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw LoRAMixerError.io("\(directory): not a folder (expected a \(what))")
        }
    }

    /// The whole file, read into memory.
    static func read(_ path: String) throws -> [UInt8] {
        let file = try FileBytes(path: path, mode: .copied, minimumSize: 0)
        return Array(file.bytes)
    }

    /// The names in `directory` (without `.` and `..`), or nil when it cannot be opened.
    static func names(in directory: String) -> [String]? {
        guard let stream = opendir(directory) else { return nil }
        defer { closedir(stream) }
        var names: [String] = []
        let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        while let entry = readdir(stream) {
            // The name in place, up to its NUL: a record is only as long as its name, so the bytes
            // of d_name past the NUL are not the record's.
            let name = String(cString: UnsafeRawPointer(entry).advanced(by: offset).assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The processors this process may run on (its affinity mask), at least 1.
    static var processorCount: Int {
        let count = Int(lmxk_cpu_count())
        return count > 0 ? count : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// Lowercase hexadecimal, two digits a byte.
    static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Seconds between two instants of `ContinuousClock`.
    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}
