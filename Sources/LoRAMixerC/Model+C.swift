import CLoRAMixer
import LoRAMixer

@_cdecl("lmx_model_params_default")
public func lmx_model_params_default() -> lmx_model_params {
    lmx_model_params(struct_size: UInt32(MemoryLayout<lmx_model_params>.size), load_mode: UInt32(LMX_LOAD_MMAP))
}

@_cdecl("lmx_model_load")
public func lmx_model_load(_ path: UnsafePointer<CChar>?, _ params: UnsafePointer<lmx_model_params>?,
                           _ out: UnsafeMutablePointer<OpaquePointer?>?) -> lmx_status {
    withStatus {
        let out = try Arguments.required(out, "out")
        out.pointee = nil
        let path = try Arguments.string(path, "path")
        let params = try Arguments.params(params, "lmx_model_params", minimum: Arguments.MinimumSize.modelParams, default: lmx_model_params_default)
        let mode: LoadMode
        switch Int(params.load_mode) {
        case Int(LMX_LOAD_MMAP): mode = .mapped
        case Int(LMX_LOAD_COPY): mode = .copied
        default: throw LoRAMixerError.invalidArgument("params.load_mode \(params.load_mode) is not LMX_LOAD_MMAP (0) or LMX_LOAD_COPY (1)")
        }
        out.pointee = Handles.make(try LanguageModel(directory: path, mode: mode), .model)
    }
}

@_cdecl("lmx_model_free")
public func lmx_model_free(_ model: OpaquePointer?) {
    Handles.release(model, .model)
}

@_cdecl("lmx_model_get_info")
public func lmx_model_get_info(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<lmx_model_info>?) -> lmx_status {
    withStatus {
        let model = try Handles.resolve(model, .model, as: LanguageModel.self, "model")
        try Arguments.writeOutput(out, "lmx_model_info") { declared in
            let c = model.config
            var info = lmx_model_info()
            info.struct_size = declared
            info.n_vocab = UInt32(c.vocabSize)
            info.n_layers = UInt32(c.layerCount)
            info.d_model = UInt32(c.hiddenSize)
            info.n_heads = UInt32(c.headCount)
            info.n_kv_heads = UInt32(c.kvHeadCount)
            info.head_dim = UInt32(c.headDim)
            info.d_ff = UInt32(c.intermediateSize)
            info.max_positions = UInt32(c.maxPositions)
            info.d_state = UInt32(c.stateSpace?.stateSize ?? 0)
            info.d_conv = UInt32(c.stateSpace?.convKernel ?? 0)
            info.dt_rank = UInt32(c.stateSpace?.timeStepRank ?? 0)
            withUnsafeMutableBytes(of: &info.architecture) { buffer in
                let bytes = Array(c.architecture.utf8.prefix(buffer.count - 1))
                buffer.copyBytes(from: bytes)
                buffer[bytes.count] = 0
            }
            return info
        }
    }
}

@_cdecl("lmx_model_module_shape")
public func lmx_model_module_shape(_ model: OpaquePointer?, _ module: UInt32, _ inFeatures: UnsafeMutablePointer<UInt32>?,
                                   _ outFeatures: UnsafeMutablePointer<UInt32>?) -> lmx_status {
    withStatus {
        let model = try Handles.resolve(model, .model, as: LanguageModel.self, "model")
        let inFeatures = try Arguments.required(inFeatures, "in_features")
        let outFeatures = try Arguments.required(outFeatures, "out_features")
        let module = try model.config.module(rawValue: Int(module), "module")
        let shape = model.config.shape(of: module)
        inFeatures.pointee = UInt32(shape.inFeatures)
        outFeatures.pointee = UInt32(shape.outFeatures)
    }
}
