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
        let desc = try load(lmx_lora_desc.self, from: rawDesc, minimum: loraDescMinimum, "lmx_lora_desc")
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

    /// A descriptor struct from caller memory: the caller's `struct_size` (its first field) must
    /// reach at least `minimum` bytes (the end of the struct's version-0 fields), else LMX_ERR_ABI
    /// naming the struct; then min(struct_size, sizeof) bytes are copied over a zeroed struct, so
    /// fields appended after the caller's version read as zero (their defaults) and fields a newer
    /// caller appended are ignored.
    static func load<T>(_ type: T.Type, from raw: UnsafeRawPointer, minimum: Int, _ name: String) throws -> T {
        let zero = zeroed(T.self)
        defer { zero.deallocate() }
        return try readStruct(raw, declaredSize: raw.load(as: UInt32.self), minimum: minimum,
                              defaults: UnsafeRawPointer(zero).load(as: T.self), name)
    }

    /// Copies `min(declaredSize, MemoryLayout<T>.size)` bytes from `raw` over `defaults`, after
    /// checking `declaredSize >= minimum` (else LMX_ERR_ABI, naming the struct and both sizes).
    public static func readStruct<T>(_ raw: UnsafeRawPointer, declaredSize: UInt32, minimum: Int, defaults: T,
                                     _ name: String) throws -> T {
        guard Int(declaredSize) >= minimum else {
            throw LoRAMixerError(.abi, "\(name).struct_size is \(declaredSize), below the \(minimum) bytes of its first version (set it to sizeof(\(name)))")
        }
        var value = defaults
        withUnsafeMutableBytes(of: &value) { bytes in
            bytes.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(Int(declaredSize), bytes.count)))
        }
        return value
    }

    /// A zeroed buffer the size of `T` (a C struct: all-zero is its "nothing set" value).
    private static func zeroed<T>(_ type: T.Type) -> UnsafeMutableRawPointer {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
        return buffer
    }

    /// Version-0 sizes: the end of the last field each struct had when it was first declared
    /// (loramixer_common.h and loramixer_plugin.h name them LMX_*_MIN_SIZE). Fields after it were
    /// appended later and read as zero from a shorter struct.
    static let loraDescMinimum = MemoryLayout<lmx_lora_desc>.offset(of: \.n_tensors)! + MemoryLayout<Int>.size
    static let customExpertDescMinimum = MemoryLayout<lmx_custom_expert_desc>.size
    static let routerDescMinimum = MemoryLayout<lmx_router_desc>.offset(of: \.temperature)! + MemoryLayout<Float>.size
    static let pluginDescriptorMinimum = MemoryLayout<lmx_plugin_descriptor>.offset(of: \.shutdown)! + MemoryLayout<UnsafeRawPointer>.size

    /// A custom expert from an `lmx_custom_expert_desc`; `keepAlive` outlives its destroy call.
    public static func customExpert(name: String, desc rawDesc: UnsafeRawPointer, config: ModelConfig,
                                    keepAlive: AnyObject? = nil) throws -> any Expert {
        try CustomExpert(name: name, desc: load(lmx_custom_expert_desc.self, from: rawDesc, minimum: customExpertDescMinimum,
                                                    "lmx_custom_expert_desc"),
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
