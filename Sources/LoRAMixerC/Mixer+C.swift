import CLoRAMixer
@_spi(CABI) import LoRAMixer

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
                               _ outIndex: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let index = try mixer.addPEFT(name: Arguments.string(name, "name"), directory: Arguments.string(dir, "dir"))
        outIndex?.pointee = index
    }
}

@_cdecl("lmx_mixer_add_lora")
public func lmx_mixer_add_lora(_ mixer: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ desc: UnsafePointer<lmx_lora_desc>?,
                               _ outIndex: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let name = try Arguments.string(name, "name")
        let desc = try Arguments.required(desc, "desc")
        let index = try CInterop.addLoRAExpert(to: mixer, name: name, desc: desc)
        outIndex?.pointee = index
    }
}

@_cdecl("lmx_mixer_add_custom")
public func lmx_mixer_add_custom(_ mixer: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                 _ desc: UnsafePointer<lmx_custom_expert_desc>?, _ outIndex: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let name = try Arguments.string(name, "name")
        let desc = try Arguments.required(desc, "desc")
        let index = try CInterop.addCustomExpert(to: mixer, name: name, desc: desc)
        outIndex?.pointee = index
    }
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
