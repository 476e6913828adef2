import Glibc

/// Writes safetensors files the way the reference implementation does (tensors sorted by name,
/// header padded with spaces so the data section starts 8-byte aligned) and atomically
/// (`AtomicFile`), so a reader or a crash never sees a half-written file.
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
        try AtomicFile.write([prefix] + sorted.map(\.data), to: path)
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
}
