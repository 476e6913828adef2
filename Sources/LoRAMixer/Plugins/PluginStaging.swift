import Glibc

/// What one plugin's init registered, held apart from the mixer until init returns OK. Also the
/// object behind the C `lmx_plugin_registrar *` a plugin receives.
final class PluginStaging {
    let library: PluginLibrary
    let config: ModelConfig
    private(set) var experts: [any Expert] = []
    private(set) var routerSource: RouterSource?
    /// The first registration that failed: the load fails even if init then returns OK.
    private(set) var failure: LoRAMixerError?
    /// The plugin's own message, from set_error.
    var pluginMessage: String?

    enum RouterSource {
        case file(String)
        case memory(Router)
    }

    init(library: PluginLibrary, config: ModelConfig) {
        self.library = library
        self.config = config
    }

    func recordFailure(_ error: LoRAMixerError) {
        if failure == nil { failure = error }
    }

    /// Reserves `name` for an expert about to be staged (checked before anything is built, so a
    /// refused registration never takes ownership of the plugin's memory or user data).
    func claim(_ name: String) throws -> String {
        if experts.contains(where: { $0.name == name }) {
            throw LoRAMixerError.invalidArgument("the plugin registers expert '\(name)' twice")
        }
        return name
    }

    /// Stages an expert; it holds the plugin library, which therefore stays open while any
    /// session uses it.
    func stage(_ expert: any Expert) {
        experts.append(PluginOwnedExpert(expert, library: library))
    }

    func stageRouter(_ source: RouterSource) {
        routerSource = source
    }

    func log(level: UInt32, _ message: String) {
        LogSink.emit(level: level, source: library.id, message)
    }
}
