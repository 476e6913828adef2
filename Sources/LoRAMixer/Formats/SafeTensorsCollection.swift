import Glibc

/// A model's weights as Hugging Face stores them: one `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`, whose `weight_map` maps each tensor name to its shard file.
/// The index and the shards must agree exactly: a listed tensor missing from its shard, a tensor
/// present in two shards, or a shard tensor the index does not list are all refused, because
/// any of them means the folder mixes files from different checkpoints.
public final class SafeTensorsCollection: Sendable {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    public let directory: String
    /// In `weight_map` order for a sharded set, in header order for a single file.
    public let tensorNames: [String]
    /// The sum of all tensors' data sizes in bytes.
    public let totalBytes: Int
    private let files: [String: SafeTensorsFile]

    public init(directory: String, mode: LoadMode = .mapped) throws {
        self.directory = directory
        let indexPath = Self.join(directory, Self.indexFileName)
        let singlePath = Self.join(directory, Self.singleFileName)
        if Self.exists(indexPath) {
            (tensorNames, files) = try Self.openShards(directory: directory, indexPath: indexPath, mode: mode)
        } else if Self.exists(singlePath) {
            let file = try SafeTensorsFile(path: singlePath, mode: mode)
            tensorNames = file.tensorNames
            files = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, file) })
        } else {
            throw LoRAMixerError.io("\(directory): no \(Self.singleFileName) or \(Self.indexFileName)")
        }
        totalBytes = files.reduce(0) { total, entry in total + (entry.value.info(entry.key)?.byteRange.count ?? 0) }
    }

    public func contains(_ name: String) -> Bool { files[name] != nil }

    public func info(_ name: String) -> TensorInfo? { files[name]?.info(name) }

    public func tensor(_ name: String) throws -> TensorView {
        guard let file = files[name] else { throw LoRAMixerError.notFound("\(directory): no tensor '\(name)'") }
        return try file.tensor(name)
    }

    /// Reads the index, opens each distinct shard once, and checks index and shards agree.
    private static func openShards(
        directory: String, indexPath: String, mode: LoadMode
    ) throws -> ([String], [String: SafeTensorsFile]) {
        let indexBytes = try FileBytes(path: indexPath, mode: .copied, minimumSize: 0)
        let index = try JSONParser.parse(indexBytes.bytes, context: indexPath)
        guard let weightMap = index.object?["weight_map"]?.object else {
            throw LoRAMixerError.format("\(indexPath): no 'weight_map' object")
        }

        var shards: [String: SafeTensorsFile] = [:]
        var files: [String: SafeTensorsFile] = [:]
        for (name, value) in weightMap.entries {
            guard let shardName = value.string else {
                throw LoRAMixerError.format(
                    "\(indexPath): weight_map entry for tensor '\(name)' is a JSON \(value.kindName), expected a shard file name")
            }
            // A name with a path in it could make the index read files outside the model folder.
            guard !shardName.isEmpty, !shardName.contains("/"), shardName != ".", shardName != ".." else {
                throw LoRAMixerError.format(
                    "\(indexPath): shard '\(shardName)' of tensor '\(name)' is not a plain file name")
            }
            if shards[shardName] == nil {
                do {
                    shards[shardName] = try SafeTensorsFile(path: join(directory, shardName), mode: mode)
                } catch let error as LoRAMixerError {
                    throw LoRAMixerError(error.kind, "\(indexPath): shard '\(shardName)' of tensor '\(name)': \(error.message)")
                }
            }
            guard let shard = shards[shardName], shard.info(name) != nil else {
                throw LoRAMixerError.format(
                    "\(indexPath): tensor '\(name)' is mapped to shard '\(shardName)', which has no such tensor")
            }
            files[name] = shard
        }

        for (shardName, shard) in shards.sorted(by: { $0.key < $1.key }) {
            for name in shard.tensorNames where files[name] !== shard {
                guard let listed = files[name] else {
                    throw LoRAMixerError.format(
                        "\(indexPath): tensor '\(name)' in shard '\(shardName)' is not listed in weight_map")
                }
                throw LoRAMixerError.format(
                    "\(indexPath): tensor '\(name)' appears in shard '\(shardName)' and in shard '\(basename(listed.path))'")
            }
        }
        return (weightMap.keys, files)
    }

    private static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    private static func basename(_ path: String) -> Substring {
        path.split(separator: "/", omittingEmptySubsequences: false).last ?? Substring(path)
    }

    private static func exists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0
    }
}
