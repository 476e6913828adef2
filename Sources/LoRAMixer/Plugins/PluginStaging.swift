import Foundation

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

    /// Runs one registration; its error is remembered (and returned to the plugin as a status).
    func register(_ what: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as LoRAMixerError {
            let tagged = LoRAMixerError(error.kind, "\(what): \(error.message)")
            if failure == nil { failure = tagged }
            throw tagged
        }
    }

    func stage(_ expert: any Expert) throws {
        if experts.contains(where: { $0.name == expert.name }) {
            throw LoRAMixerError.invalidArgument("the plugin registers expert '\(expert.name)' twice")
        }
        experts.append(expert)
    }

    func stageRouter(_ source: RouterSource) {
        routerSource = source
    }

    func log(level: UInt32, _ message: String) {
        let names = ["debug", "info", "warning", "error"]
        let name = Int(level) < names.count ? names[Int(level)] : "level \(level)"
        FileHandle.standardError.write(Data("[loramixer plugin \(library.id)] \(name): \(message)\n".utf8))
    }
}
