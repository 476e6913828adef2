import CLoRAMixer
import LoRAMixer

@_cdecl("lmx_plugin_params_default")
public func lmx_plugin_params_default() -> lmx_plugin_params {
    lmx_plugin_params(struct_size: UInt32(MemoryLayout<lmx_plugin_params>.size), config: nil, allowed_sha256: nil,
                      n_allowed_sha256: 0, allow_writable: 0)
}

@_cdecl("lmx_mixer_load_plugin")
public func lmx_mixer_load_plugin(_ mixer: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ params: UnsafePointer<lmx_plugin_params>?,
                                  _ outIndex: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let path = try Arguments.string(path, "path")
        let params = try Arguments.params(params, "lmx_plugin_params", minimum: Arguments.MinimumSize.pluginParams, default: lmx_plugin_params_default)
        let config = try params.config.map { pointer in
            guard let config = String(validatingCString: pointer) else {
                throw LoRAMixerError.invalidArgument("params.config is not valid UTF-8")
            }
            return config
        } ?? ""
        var allowed: Set<String>?
        if params.allowed_sha256 != nil || params.n_allowed_sha256 > 0 {
            let pointers = try Arguments.array(params.allowed_sha256, count: params.n_allowed_sha256, limit: 1 << 16,
                                               "params.allowed_sha256")
            allowed = Set(try pointers.enumerated().map { index, pointer in
                try Arguments.string(pointer, "params.allowed_sha256[\(index)]")
            })
        }
        let policy = PluginPolicy(allowedSHA256: allowed, allowWritable: params.allow_writable != 0)
        try mixer.loadPlugin(path: path, config: config, policy: policy)
        outIndex?.pointee = mixer.loadedPlugins.count - 1
    }
}

@_cdecl("lmx_mixer_plugin_count")
public func lmx_mixer_plugin_count(_ mixer: OpaquePointer?, _ outCount: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        try Arguments.required(outCount, "out_count").pointee = mixer.loadedPlugins.count
    }
}

@_cdecl("lmx_mixer_plugin_string")
public func lmx_mixer_plugin_string(_ mixer: OpaquePointer?, _ index: Int, _ field: UInt32, _ buffer: UnsafeMutablePointer<CChar>?,
                                    _ capacity: Int, _ needed: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        let plugins = mixer.loadedPlugins
        guard index >= 0, index < plugins.count else {
            throw LoRAMixerError.notFound("plugin index \(UInt(bitPattern: index)) is out of range (the mixer has \(plugins.count) plugins)")
        }
        let plugin = plugins[index]
        let value: String
        switch Int(field) {
        case Int(LMX_PLUGIN_ID): value = plugin.id
        case Int(LMX_PLUGIN_VERSION): value = plugin.version
        case Int(LMX_PLUGIN_DESCRIPTION): value = plugin.summary
        case Int(LMX_PLUGIN_LICENSE): value = plugin.license
        case Int(LMX_PLUGIN_PATH): value = plugin.path
        case Int(LMX_PLUGIN_EXPERTS): value = plugin.expertNames.joined(separator: "\n")
        default: throw LoRAMixerError.invalidArgument("'field' \(field) is not an LMX_PLUGIN_* value (0...5)")
        }
        guard buffer != nil || needed != nil else {
            throw LoRAMixerError.invalidArgument("'buf' and 'needed' are both NULL: nothing to write")
        }
        try copyString(value, into: buffer, capacity: Arguments.capacity(capacity), needed: needed)
    }
}

@_cdecl("lmx_mixer_unload_plugin")
public func lmx_mixer_unload_plugin(_ mixer: OpaquePointer?, _ id: UnsafePointer<CChar>?) -> lmx_status {
    withStatus {
        let mixer = try Handles.resolve(mixer, .mixer, as: Mixer.self, "mixer")
        try mixer.unloadPlugin(id: Arguments.string(id, "id"))
    }
}
