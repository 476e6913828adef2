internal import CLoRAMixer

/// Conversions from the C descriptors shared by the host API and the plugin API into experts, so
/// `lmx_mixer_add_lora` and a plugin's `register_lora` run the same checks. For the C layer only:
/// the descriptors arrive as raw pointers, keeping C types out of the core's public API.
@_spi(CABI) public enum CInterop {
    /// An expert from an `lmx_lora_desc`: tensors copied, or borrowed until the expert is gone
    /// when `desc.release` is set. `keepAlive` (a plugin library) outlives the release call. If
    /// this throws, `release` is never called: the memory still belongs to the caller.
    public static func loraExpert(name: String, desc rawDesc: UnsafeRawPointer, config: ModelConfig,
                                  keepAlive: AnyObject? = nil) throws -> LoRAExpert {
        try loraExpertAndRelease(name: name, desc: rawDesc, config: config, keepAlive: keepAlive).expert
    }

    /// Adds the expert of an `lmx_lora_desc` to `mixer`; if that fails, `release` is not called.
    public static func addLoRAExpert(to mixer: Mixer, name: String, desc: UnsafeRawPointer) throws -> Int {
        let (expert, release) = try loraExpertAndRelease(name: name, desc: desc, config: mixer.model.config, keepAlive: nil)
        do {
            return try mixer.add(expert)
        } catch {
            release?.disarm()
            throw error
        }
    }

    private static func loraExpertAndRelease(name: String, desc rawDesc: UnsafeRawPointer, config: ModelConfig,
                                             keepAlive: AnyObject?) throws -> (expert: LoRAExpert, release: ReleaseOnDeinit?) {
        let desc = try load(lmx_lora_desc.self, from: rawDesc, "lmx_lora_desc")
        let owner: ReleaseOnDeinit? = desc.release.map { release in
            let userData = UncheckedSendable(desc.user_data)
            return ReleaseOnDeinit { [keepAlive] in
                release(userData.value)
                _ = keepAlive
            }
        }
        do {
            return (try loraExpert(name: name, desc: desc, owner: owner, config: config), owner)
        } catch {
            owner?.disarm()
            throw error
        }
    }

    private static func loraExpert(name: String, desc: lmx_lora_desc, owner: AnyObject?, config: ModelConfig) throws -> LoRAExpert {
        guard desc.rank > 0, desc.rank <= 1 << 16 else {
            throw LoRAMixerError.invalidArgument("desc.rank \(desc.rank) must be in 1...65536")
        }
        let dtype = try memoryDType(desc.dtype, "desc.dtype")
        let limit = config.layerCount * config.modules.count
        guard (1...limit).contains(desc.n_tensors), let entries = desc.tensors else {
            throw LoRAMixerError.invalidArgument("desc.tensors must be non-NULL with n_tensors 1...\(limit) (layers x modules), got \(UInt(bitPattern: desc.n_tensors))")
        }
        let rank = Int(desc.rank)
        let tensors = try (0..<desc.n_tensors).map { index in
            let entry = entries[index]
            let module = try config.module(rawValue: Int(entry.module), "desc.tensors[\(index)].module")
            let (inFeatures, outFeatures) = config.shape(of: module)
            guard Int(entry.in_features) == inFeatures, Int(entry.out_features) == outFeatures else {
                throw LoRAMixerError.shape("desc.tensors[\(index)] (layer \(entry.layer) \(module.name)) is declared \(entry.in_features) -> \(entry.out_features) features, but this model's \(module.name) is \(inFeatures) -> \(outFeatures): A must be [\(rank), \(inFeatures)] and B [\(outFeatures), \(rank)]")
            }
            func matrix(_ pointer: UnsafeRawPointer?, rows: Int, cols: Int, _ what: String) throws -> WeightMatrix {
                guard let pointer else { throw LoRAMixerError.invalidArgument("desc.tensors[\(index)].\(what) must not be NULL") }
                if let owner { return try WeightMatrix(rows: rows, cols: cols, dtype: dtype, borrowing: pointer, owner: owner) }
                return try WeightMatrix(rows: rows, cols: cols, dtype: dtype,
                                        copying: UnsafeRawBufferPointer(start: pointer, count: rows * cols * dtype.byteSize))
            }
            return LoRAExpert.MemoryTensor(layer: Int(entry.layer), module: module,
                                           a: try matrix(entry.a, rows: rank, cols: inFeatures, "a"),
                                           b: try matrix(entry.b, rows: outFeatures, cols: rank, "b"))
        }
        return try LoRAExpert(name: name, alpha: Double(desc.alpha), useRSLoRA: desc.use_rslora != 0, tensors: tensors, config: config)
    }

    /// A descriptor struct, after checking the caller's struct_size covers this version of it.
    static func load<T>(_ type: T.Type, from raw: UnsafeRawPointer, _ name: String) throws -> T {
        let declared = raw.load(as: UInt32.self)
        guard Int(declared) >= MemoryLayout<T>.size else {
            throw LoRAMixerError(.abi, "\(name).struct_size is \(declared), expected at least \(MemoryLayout<T>.size); set it to sizeof(\(name))")
        }
        return raw.load(as: T.self)
    }

    /// A custom expert from an `lmx_custom_expert_desc`; `keepAlive` outlives its destroy call.
    public static func customExpert(name: String, desc rawDesc: UnsafeRawPointer, config: ModelConfig,
                                    keepAlive: AnyObject? = nil) throws -> any Expert {
        try CustomExpert(name: name, desc: load(lmx_custom_expert_desc.self, from: rawDesc, "lmx_custom_expert_desc"),
                         config: config, keepAlive: keepAlive)
    }

    /// Validates `desc` and adds the custom expert to `mixer`; if that fails, its destroy callback
    /// is not called (the caller keeps user_data).
    public static func addCustomExpert(to mixer: Mixer, name: String, desc: UnsafeRawPointer) throws -> Int {
        let expert = try customExpert(name: name, desc: desc, config: mixer.model.config)
        do {
            return try mixer.add(expert)
        } catch {
            (expert as? CustomExpert)?.disownUserData()
            throw error
        }
    }

    static func memoryDType(_ value: UInt32, _ name: String) throws -> DType {
        switch Int(value) {
        case Int(LMX_DTYPE_F32): return .f32
        case Int(LMX_DTYPE_F16): return .f16
        case Int(LMX_DTYPE_BF16): return .bf16
        default: throw LoRAMixerError.invalidArgument("\(name) \(value) is not LMX_DTYPE_F32, LMX_DTYPE_F16 or LMX_DTYPE_BF16")
        }
    }
}

/// A value the caller vouches may cross threads (a C user_data pointer).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
