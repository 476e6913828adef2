/// One `.safetensors` file, validated in full when opened (see `SafeTensorsFile+Validation`), so
/// every later tensor access is a dictionary lookup that cannot read outside the file.
/// Immutable after init and safe to share across threads.
public final class SafeTensorsFile: Sendable {
    public let path: String
    /// The `__metadata__` strings; empty when the header has none.
    public let metadata: [String: String]
    /// Tensor names in header order.
    public let tensorNames: [String]
    private let infos: [String: TensorInfo]
    private let storage: FileBytes

    public init(path: String, mode: LoadMode = .mapped) throws {
        storage = try FileBytes(path: path, mode: mode, minimumSize: 8)
        let header = try Self.readHeader(storage.bytes, path: path)
        self.path = path
        metadata = header.metadata
        tensorNames = header.tensors.map(\.name)
        // Names are unique: the JSON parser refuses duplicate keys.
        infos = Dictionary(uniqueKeysWithValues: header.tensors.map { ($0.name, $0) })
    }

    public func info(_ name: String) -> TensorInfo? { infos[name] }

    public func tensor(_ name: String) throws -> TensorView {
        guard let info = infos[name] else { throw LoRAMixerError.notFound("\(path): no tensor '\(name)'") }
        return TensorView(
            path: path, info: info,
            bytes: UnsafeRawBufferPointer(rebasing: storage.bytes[info.byteRange]), owner: storage)
    }
}
