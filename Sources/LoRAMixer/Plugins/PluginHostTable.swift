internal import CLoRAMixer
import Glibc

/// The `lmx_host_api` table handed to a plugin's init. Each entry resolves the registrar pointer
/// back to its `PluginStaging`, validates, converts and stages; failures become a status plus a
/// message kept in the staging.
enum PluginHostTable {
    static func make() -> lmx_host_api {
        var table = lmx_host_api()
        table.struct_size = UInt32(MemoryLayout<lmx_host_api>.size)
        table.abi_version = UInt32(LMX_PLUGIN_ABI_MAJOR << 16 | LMX_PLUGIN_ABI_MINOR)
        table.log = { registrar, level, message in
            guard let staging = PluginHostTable.staging(registrar), let message else { return }
            staging.log(level: level, String(cString: message))
        }
        table.model_info = { registrar, out in
            PluginHostTable.call(registrar) { staging in
                guard let out else { throw LoRAMixerError.invalidArgument("'out' must not be NULL") }
                let size = Int(UnsafeRawPointer(out).load(as: UInt32.self))
                guard size >= MemoryLayout<UInt32>.size else {
                    throw LoRAMixerError(.abi, "lmx_plugin_model_info.struct_size is \(size); set it to sizeof(lmx_plugin_model_info)")
                }
                let c = staging.config
                var info = lmx_plugin_model_info()
                info.struct_size = UInt32(size)
                (info.n_vocab, info.n_layers, info.d_model) = (UInt32(c.vocabSize), UInt32(c.layerCount), UInt32(c.hiddenSize))
                (info.n_heads, info.n_kv_heads, info.head_dim) = (UInt32(c.headCount), UInt32(c.kvHeadCount), UInt32(c.headDim))
                (info.d_ff, info.max_positions) = (UInt32(c.intermediateSize), UInt32(c.maxPositions))
                withUnsafeMutableBytes(of: &info.architecture) { PluginHostTable.copyCString(c.architecture, into: $0) }
                withUnsafeMutableBytes(of: &info.family) { PluginHostTable.copyCString(c.family.rawValue, into: $0) }
                info.d_state = UInt32(c.stateSpace?.stateSize ?? 0)
                info.d_conv = UInt32(c.stateSpace?.convKernel ?? 0)
                info.dt_rank = UInt32(c.stateSpace?.timeStepRank ?? 0)
                withUnsafeBytes(of: &info) { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: min(size, $0.count)) }
            }
        }
        table.module_shape = { registrar, module, inFeatures, outFeatures in
            PluginHostTable.call(registrar) { staging in
                guard let inFeatures, let outFeatures else { throw LoRAMixerError.invalidArgument("'in_features' and 'out_features' must not be NULL") }
                let module = try staging.config.module(rawValue: Int(module), "module")
                let shape = staging.config.shape(of: module)
                (inFeatures.pointee, outFeatures.pointee) = (UInt32(shape.inFeatures), UInt32(shape.outFeatures))
            }
        }
        table.register_lora = { registrar, name, desc in
            PluginHostTable.register(registrar, "register_lora") { staging in
                let name = try staging.claim(PluginHostTable.cString(name, "name"))
                guard let desc else { throw LoRAMixerError.invalidArgument("'desc' must not be NULL") }
                staging.stage(try PluginHostTable.naming(name) {
                    try CInterop.loraExpert(name: name, desc: desc, config: staging.config, keepAlive: staging.library)
                })
            }
        }
        table.register_peft = { registrar, name, directory in
            PluginHostTable.register(registrar, "register_peft") { staging in
                let name = try staging.claim(PluginHostTable.cString(name, "name"))
                let directory = try PluginHostTable.cString(directory, "dir")
                staging.stage(try PluginHostTable.naming(name) {
                    try LoRAExpert(peftDirectory: directory, name: name, config: staging.config)
                })
            }
        }
        table.register_custom = { registrar, name, desc in
            PluginHostTable.register(registrar, "register_custom") { staging in
                let name = try staging.claim(PluginHostTable.cString(name, "name"))
                guard let desc else { throw LoRAMixerError.invalidArgument("'desc' must not be NULL") }
                staging.stage(try PluginHostTable.naming(name) {
                    try CInterop.customExpert(name: name, desc: desc, config: staging.config, keepAlive: staging.library)
                })
            }
        }
        table.register_router_file = { registrar, path in
            PluginHostTable.register(registrar, "register_router_file") { staging in
                let path = try PluginHostTable.cString(path, "path")
                _ = try Router(path: path, config: staging.config)  // fail now, with the file named
                staging.stageRouter(.file(path))
            }
        }
        table.register_router = { registrar, desc in
            PluginHostTable.register(registrar, "register_router") { staging in
                guard let desc else { throw LoRAMixerError.invalidArgument("'desc' must not be NULL") }
                staging.stageRouter(.memory(try Router(desc: desc, config: staging.config, source: "router from plugin \(staging.library.id)")))
            }
        }
        table.set_error = { registrar, message in
            guard let staging = PluginHostTable.staging(registrar), let message else { return }
            staging.pluginMessage = String(cString: message)
        }
        return table
    }

    /// The staging behind a registrar pointer (the plugin gets it unretained for init's duration).
    private static func staging(_ registrar: OpaquePointer?) -> PluginStaging? {
        registrar.map { Unmanaged<PluginStaging>.fromOpaque(UnsafeRawPointer($0)).takeUnretainedValue() }
    }

    /// A registration: its failure, whatever the cause, is remembered so the load fails even if
    /// init goes on to return OK.
    private static func register(_ registrar: OpaquePointer?, _ function: String, _ body: (PluginStaging) throws -> Void) -> lmx_status {
        call(registrar) { staging in
            do {
                try body(staging)
            } catch let error as LoRAMixerError {
                staging.recordFailure(LoRAMixerError(error.kind, "\(function): \(error.message)"))
                throw error
            } catch {
                staging.recordFailure(.io("\(function): \(error)"))
                throw error
            }
        }
    }

    /// Prefixes a failure with the expert it concerns.
    private static func naming<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as LoRAMixerError {
            throw LoRAMixerError(error.kind, "expert '\(name)': \(error.message)")
        }
    }

    private static func call(_ registrar: OpaquePointer?, _ body: (PluginStaging) throws -> Void) -> lmx_status {
        guard let staging = staging(registrar) else { return lmx_status(LMX_ERR_INVALID_ARGUMENT) }
        do {
            try body(staging)
            return lmx_status(LMX_OK)
        } catch let error as LoRAMixerError {
            return error.kind.cStatus
        } catch {
            return LoRAMixerError.Kind.io.cStatus  // not the core's own: a system or library failure
        }
    }

    private static func cString(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
        guard let pointer else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL") }
        guard let string = String(validatingCString: pointer), !string.isEmpty else {
            throw LoRAMixerError.invalidArgument("'\(name)' must be a non-empty UTF-8 string")
        }
        return string
    }

    private static func copyCString(_ string: String, into buffer: UnsafeMutableRawBufferPointer) {
        let bytes = Array(string.utf8.prefix(buffer.count - 1))
        buffer.copyBytes(from: bytes)
        buffer[bytes.count] = 0
    }
}
