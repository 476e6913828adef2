import Glibc

/// A model plus named experts and an optional router. Sessions take a snapshot of it, so adding
/// experts later never changes a running session.
public final class Mixer: @unchecked Sendable {
    public let model: LanguageModel
    private let lock = Lock()
    private var _experts: [any Expert] = []
    private var _router: Router?
    private var _plugins: [LoadedPlugin] = []

    /// A plugin the mixer holds, with the names of the experts it registered.
    struct LoadedPlugin {
        let library: PluginLibrary
        let expertNames: [String]
    }

    public init(model: LanguageModel) {
        self.model = model
    }

    public var experts: [any Expert] { lock.withLock { _experts } }
    public var router: Router? { lock.withLock { _router } }

    /// Adds `expert`; returns its index. Names are unique. Experts must all be added before a
    /// router is loaded, since the router has one row per expert.
    @discardableResult
    public func add(_ expert: any Expert) throws -> Int {
        try lock.withLock {
            guard !expert.name.isEmpty else { throw LoRAMixerError.invalidArgument("expert name must not be empty") }
            guard !_experts.contains(where: { $0.name == expert.name }) else {
                throw LoRAMixerError.invalidArgument("an expert named '\(expert.name)' is already in the mixer")
            }
            if let router = _router {
                throw LoRAMixerError.state("cannot add expert '\(expert.name)': the mixer already has a router (\(router.source)) for experts \(router.expertNames); add every expert before loading the router")
            }
            _experts.append(expert)
            return _experts.count - 1
        }
    }

    /// Loads the PEFT folder `directory` as expert `name`.
    @discardableResult
    public func addPEFT(name: String, directory: String) throws -> Int {
        try checkNameIsFree(name)
        return try add(LoRAExpert(peftDirectory: directory, name: name, config: model.config))
    }

    /// Loads the router file at `path`, matching its experts to the mixer's by name.
    public func loadRouter(path: String) throws {
        let router = try Router(path: path, config: model.config)
        try lock.withLock {
            _router = try router.ordered(for: _experts.map(\.name))
        }
    }

    /// Fails early on a taken name, before an adapter is read.
    private func checkNameIsFree(_ name: String) throws {
        if experts.contains(where: { $0.name == name }) {
            throw LoRAMixerError.invalidArgument("an expert named '\(name)' is already in the mixer")
        }
    }

    var plugins: [LoadedPlugin] { lock.withLock { _plugins } }

    /// Adds a plugin's staged experts (and router) all at once, or nothing: names must be new, and
    /// the router that results must route to exactly the experts that result.
    func commit(plugin: LoadedPlugin, experts: [any Expert], router: Router?) throws {
        try lock.withLock {
            guard !_plugins.contains(where: { $0.library.id == plugin.library.id }) else {
                throw LoRAMixerError.plugin("a plugin with id '\(plugin.library.id)' is already loaded")
            }
            if let clash = experts.first(where: { expert in _experts.contains { $0.name == expert.name } }) {
                throw LoRAMixerError.invalidArgument("it registers expert '\(clash.name)', but the mixer already has an expert of that name")
            }
            let combined = _experts + experts
            let newRouter = try (router ?? _router)?.ordered(for: combined.map(\.name))
            _experts = combined
            _router = newRouter
            _plugins.append(plugin)
        }
    }

    /// Removes a plugin's experts (and the router, if it routes to any of them). Sessions that
    /// use them keep them until they end; the library closes when the last user is gone.
    public func unloadPlugin(id: String) throws {
        try lock.withLock {
            guard let index = _plugins.firstIndex(where: { $0.library.id == id }) else {
                throw LoRAMixerError.notFound("no plugin with id '\(id)' is loaded (loaded: \(_plugins.map(\.library.id)))")
            }
            let removed = Set(_plugins[index].expertNames)
            _experts.removeAll { removed.contains($0.name) }
            if let router = _router, router.expertNames.contains(where: removed.contains) { _router = nil }
            _plugins.remove(at: index)
        }
    }

    /// Replaces experts by name (keeping their positions) and, when given, the router: what a
    /// training run produced.
    func adopt(experts trained: [any Expert], router: Router?) throws {
        try lock.withLock {
            var experts = _experts
            for expert in trained {
                guard let index = experts.firstIndex(where: { $0.name == expert.name }) else {
                    throw LoRAMixerError.notFound("trained expert '\(expert.name)' is no longer in the mixer")
                }
                experts[index] = expert
            }
            let ordered = try router?.ordered(for: experts.map(\.name))
            _experts = experts
            if let ordered { _router = ordered }
        }
    }

    /// A new session over the experts and router the mixer has now.
    public func makeSession(contextLength: Int? = nil, trace: Bool = true, threads: Int? = nil) throws -> Session {
        let (experts, router) = lock.withLock { (_experts, _router) }
        return try Session(model: model, experts: experts, router: router, contextLength: contextLength, trace: trace,
                           threads: threads)
    }
}
