import Glibc

/// Writes safetensors files the way the reference implementation does (tensors sorted by name,
/// header padded with spaces so the data section starts 8-byte aligned) and atomically: the file
/// is written under a temporary name in the target's folder, synced, then renamed over the
/// target, so a reader or a crash never sees a half-written file.
public enum SafeTensorsWriter {
    public static func write(
        _ tensors: [(name: String, dtype: DType, shape: [Int], data: [UInt8])],
        metadata: [String: String], to path: String
    ) throws {
        let sorted = tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var header = JSONObject()
        if !metadata.isEmpty {
            var fields = JSONObject()
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) { fields[key] = .string(value) }
            header["__metadata__"] = .object(fields)
        }
        var offset = 0
        for tensor in sorted {
            let context = "\(path): tensor '\(tensor.name)'"
            guard tensor.name != "__metadata__", header[tensor.name] == nil else {
                throw LoRAMixerError.invalidArgument("\(context): name is reserved or used twice")
            }
            let byteCount = try checkedProduct(tensor.shape + [tensor.dtype.byteSize], "\(context) shape")
            guard byteCount == tensor.data.count else {
                throw LoRAMixerError.invalidArgument(
                    "\(context): \(tensor.dtype.rawValue) \(tensor.shape) needs \(byteCount) bytes, got \(tensor.data.count)")
            }
            header[tensor.name] = .object([
                "dtype": .string(tensor.dtype.rawValue),
                "shape": .array(tensor.shape.map(JSONValue.init)),
                "data_offsets": .array([JSONValue(offset), JSONValue(offset + byteCount)]),
            ])
            offset += byteCount
        }

        var headerBytes = Array(JSONValue.object(header).serialized().utf8)
        headerBytes += repeatElement(UInt8(ascii: " "), count: (8 - headerBytes.count % 8) % 8)
        var prefix = withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { Array($0) }
        prefix += headerBytes
        try writeAtomically(to: path, [prefix] + sorted.map(\.data))
    }

    /// F32 tensors from `Float` values. The in-memory bytes are used as they are: safetensors is
    /// little-endian, like every host this package supports.
    public static func write(
        _ tensors: [(name: String, shape: [Int], data: [Float])],
        metadata: [String: String], to path: String
    ) throws {
        let encoded = tensors.map { tensor in
            (name: tensor.name, dtype: DType.f32, shape: tensor.shape, data: tensor.data.withUnsafeBytes { Array($0) })
        }
        try write(encoded, metadata: metadata, to: path)
    }

    /// Writes `chunks` in order to a temporary file next to `path`, syncs it, renames it over
    /// `path` and syncs the folder so the rename itself survives a crash.
    private static func writeAtomically(to path: String, _ chunks: [[UInt8]]) throws {
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
}
