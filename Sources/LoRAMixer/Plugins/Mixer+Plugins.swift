internal import CLoRAMixer

/// What `Mixer.plugins` reports about one loaded plugin.
public struct PluginInfo: Sendable, Equatable {
    public let id: String
    public let version: String
    public let summary: String
    public let license: String
    public let path: String
    public let expertNames: [String]
}

extension Mixer {
    /// Loads the plugin shared library at `path`: checks it against `policy`, opens it, validates
    /// its descriptor, runs its init with `config`, and adds everything it registered — or, if init
    /// or any registration fails, nothing (the error says why; the mixer is unchanged).
    @discardableResult
    public func loadPlugin(path: String, config: String = "", policy: PluginPolicy = PluginPolicy()) throws -> PluginInfo {
        let library = try PluginLibrary(path: path, policy: policy)
        if plugins.contains(where: { $0.library.id == library.id }) {
            throw LoRAMixerError.plugin("\(path): a plugin with id '\(library.id)' is already loaded")
        }
        let staging = PluginStaging(library: library, config: model.config)
        var table = PluginHostTable.make()
        let registrar = OpaquePointer(Unmanaged.passUnretained(staging).toOpaque())
        let status = withExtendedLifetime(staging) { library.initialize(&table, registrar, config) }
        let prefix = "\(path): plugin '\(library.id)'"
        if status == lmx_status(LMX_OK) { library.initialized = true }
        // A failed registration is the cause, whatever init made of it: report its own status.
        if let failure = staging.failure {
            let plugin = staging.pluginMessage.map { " (plugin says: \($0))" } ?? ""
            throw LoRAMixerError(failure.kind, "\(prefix): a registration failed, so nothing it registered is kept: \(failure.message)\(plugin)")
        }
        guard status == lmx_status(LMX_OK) else {
            throw LoRAMixerError.plugin("\(prefix) init failed with status \(status): \(staging.pluginMessage ?? "no message")")
        }
        let router: Router?
        switch staging.routerSource {
        case .file(let routerPath)?: router = try Router(path: routerPath, config: model.config)
        case .memory(let memory)?: router = memory
        case nil: router = nil
        }
        let loaded = LoadedPlugin(library: library, expertNames: staging.experts.map(\.name))
        do {
            try commit(plugin: loaded, experts: staging.experts, router: router)
        } catch let error as LoRAMixerError {
            throw LoRAMixerError(error.kind, "\(prefix): \(error.message)")
        }
        return Self.info(loaded)
    }

    /// The loaded plugins, in load order.
    public var loadedPlugins: [PluginInfo] { plugins.map(Self.info) }

    private static func info(_ plugin: LoadedPlugin) -> PluginInfo {
        let library = plugin.library
        return PluginInfo(id: library.id, version: library.version, summary: library.summary, license: library.license,
                          path: library.path, expertNames: plugin.expertNames)
    }
}
