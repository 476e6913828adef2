import CLoRAMixer
import LoRAMixer

@_cdecl("lmx_mixer_create")
public func lmx_mixer_create(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> lmx_status {
    withStatus {
        let out = try Arguments.required(out, "out")
        out.pointee = nil
        let model = try Handles.resolve(model, .model, as: LanguageModel.self, "model")
        out.pointee = Handles.make(Mixer(model: model), .mixer)
    }
}

@_cdecl("lmx_mixer_free")
public func lmx_mixer_free(_ mixer: OpaquePointer?) {
    Handles.release(mixer, .mixer)
}

@_cdecl("lmx_mixer_add_peft")
public func lmx_mixer_add_peft(_ mixer: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ dir: UnsafePointer<CChar>?,
                               _ outIndex: UnsafeMutablePointer<Int32>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let index = try mixer.addPEFT(name: Arguments.string(name, "name"), directory: Arguments.string(dir, "dir"))
        outIndex?.pointee = Int32(index)
    }
}

@_cdecl("lmx_mixer_add_lora")
public func lmx_mixer_add_lora(_ mixer: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ desc: UnsafePointer<lmx_lora_desc>?,
                               _ outIndex: UnsafeMutablePointer<Int32>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let name = try Arguments.string(name, "name")
        let desc = try Arguments.required(desc, "desc").pointee
        _ = try Arguments.structSize(desc.struct_size, minimum: MemoryLayout<lmx_lora_desc>.size, "lmx_lora_desc")
        guard desc.rank > 0, desc.rank <= 1 << 16 else {
            throw LoRAMixerError.invalidArgument("desc.rank \(desc.rank) must be in 1...65536")
        }
        let rank = Int(desc.rank)
        let dtype = try memoryDType(desc.dtype)
        let config = mixer.model.config
        let entries = try Arguments.array(desc.tensors, count: desc.n_tensors,
                                          limit: config.layerCount * ProjectionModule.allCases.count, "desc.tensors")
        let tensors = try entries.enumerated().map { index, entry in
            let module = try projectionModule(entry.module, "desc.tensors[\(index)].module")
            let (inFeatures, outFeatures) = config.shape(of: module)
            return LoRAExpert.MemoryTensor(
                layer: Int(entry.layer), module: module,
                a: try copyMatrix(entry.a, rows: rank, cols: inFeatures, dtype: dtype, "desc.tensors[\(index)].a"),
                b: try copyMatrix(entry.b, rows: outFeatures, cols: rank, dtype: dtype, "desc.tensors[\(index)].b"))
        }
        let expert = try LoRAExpert(name: name, alpha: Double(desc.alpha), useRSLoRA: desc.use_rslora != 0,
                                    tensors: tensors, config: config)
        outIndex?.pointee = Int32(try mixer.add(expert))
    }
}

private func memoryDType(_ value: UInt32) throws -> DType {
    switch Int(value) {
    case Int(LMX_DTYPE_F32): return .f32
    case Int(LMX_DTYPE_F16): return .f16
    case Int(LMX_DTYPE_BF16): return .bf16
    default: throw LoRAMixerError.invalidArgument("desc.dtype \(value) is not LMX_DTYPE_F32, LMX_DTYPE_F16 or LMX_DTYPE_BF16")
    }
}

/// Copies a `[rows, cols]` matrix of `dtype` out of caller memory (kept in its dtype).
private func copyMatrix(_ pointer: UnsafeRawPointer?, rows: Int, cols: Int, dtype: DType, _ name: String) throws -> WeightMatrix {
    guard let pointer else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL") }
    return try WeightMatrix(rows: rows, cols: cols, dtype: dtype,
                            copying: UnsafeRawBufferPointer(start: pointer, count: rows * cols * dtype.byteSize))
}

@_cdecl("lmx_mixer_expert_count")
public func lmx_mixer_expert_count(_ mixer: OpaquePointer?, _ outCount: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        try Arguments.required(outCount, "out_count").pointee = mixer.experts.count
    }
}

@_cdecl("lmx_mixer_expert_name")
public func lmx_mixer_expert_name(_ mixer: OpaquePointer?, _ index: Int, _ buffer: UnsafeMutablePointer<CChar>?,
                                  _ capacity: Int, _ needed: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let experts = mixer.experts
        guard index >= 0, index < experts.count else {
            throw LoRAMixerError.notFound("expert index \(UInt(bitPattern: index)) is out of range (the mixer has \(experts.count) experts)")
        }
        guard buffer != nil || needed != nil else {
            throw LoRAMixerError.invalidArgument("'buf' and 'needed' are both NULL: nothing to write")
        }
        try copyString(experts[index].name, into: buffer, capacity: Arguments.capacity(capacity), needed: needed)
    }
}

@_cdecl("lmx_mixer_load_router")
public func lmx_mixer_load_router(_ mixer: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        try mixer.loadRouter(path: Arguments.string(path, "path"))
    }
}
