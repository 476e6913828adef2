internal import CLoRAMixer

/// An expert whose delta is computed by host or plugin code through a C callback
/// (`lmx_custom_expert_desc`). `destroy(user_data)` runs once, when the last user lets go.
final class CustomExpert: Expert, @unchecked Sendable {
    let name: String
    private let forward: lmx_expert_forward_fn
    private var destroy: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?
    private let userData: UnsafeMutableRawPointer?
    /// `[layer][module.rawValue]`
    private let adapted: [[Bool]]
    /// `(in, out)` features by `module.rawValue`.
    private let features: [(inFeatures: Int, outFeatures: Int)]

    /// Kept alive until after `destroy` ran (the plugin library that holds its code).
    private let keepAlive: AnyObject?

    /// Validates `desc` against `config`; on failure nothing is kept and `destroy` is not called.
    init(name: String, desc: lmx_custom_expert_desc, config: ModelConfig, keepAlive: AnyObject?) throws {
        let source = "custom expert '\(name)'"
        guard let forward = desc.forward else {
            throw LoRAMixerError.invalidArgument("\(source): 'forward' must not be NULL")
        }
        let moduleCount = config.modules.count
        guard (1...moduleCount).contains(desc.n_modules) else {
            throw LoRAMixerError.invalidArgument("\(source): n_modules is \(UInt(bitPattern: desc.n_modules)), expected 1...\(moduleCount) (this model's projections: \(config.moduleNames))")
        }
        guard let modules = desc.modules, let ins = desc.in_features, let outs = desc.out_features else {
            throw LoRAMixerError.invalidArgument("\(source): 'modules', 'in_features' and 'out_features' must not be NULL")
        }
        var moduleMask = Array(repeating: false, count: ProjectionModule.allCases.count)
        for i in 0..<desc.n_modules {
            let module = try config.module(rawValue: Int(modules[i]), "\(source): modules[\(i)] =")
            guard !moduleMask[module.rawValue] else {
                throw LoRAMixerError.invalidArgument("\(source): module \(module.name) is listed twice")
            }
            let (inFeatures, outFeatures) = config.shape(of: module)
            guard Int(ins[i]) == inFeatures, Int(outs[i]) == outFeatures else {
                throw LoRAMixerError.shape("\(source): \(module.name) is declared \(ins[i]) -> \(outs[i]) features, but this model's \(module.name) is \(inFeatures) -> \(outFeatures)")
            }
            moduleMask[module.rawValue] = true
        }
        var layerMask = Array(repeating: desc.n_layers == 0, count: config.layerCount)
        if desc.n_layers != 0 {
            guard (1...config.layerCount).contains(desc.n_layers), let layers = desc.layers else {
                throw LoRAMixerError.invalidArgument("\(source): 'layers' must be non-NULL with n_layers 1...\(config.layerCount), got \(UInt(bitPattern: desc.n_layers))")
            }
            for i in 0..<desc.n_layers {
                guard Int(layers[i]) < config.layerCount else {
                    throw LoRAMixerError.shape("\(source): layers[\(i)] = \(layers[i]), but the model has \(config.layerCount) layers")
                }
                layerMask[Int(layers[i])] = true
            }
        }
        self.name = name
        self.forward = forward
        self.destroy = desc.destroy
        self.userData = desc.user_data
        self.keepAlive = keepAlive
        adapted = layerMask.map { inLayer in moduleMask.map { inLayer && $0 } }
        features = ProjectionModule.allCases.map { config.shape(of: $0) }
    }

    deinit { destroy?(userData) }

    /// Forgets `destroy`: for a registration that failed after the expert was built, whose
    /// user_data still belongs to the caller.
    func disownUserData() { destroy = nil }

    func adapts(layer: Int, module: ProjectionModule) -> Bool {
        adapted.indices.contains(layer) && adapted[layer][module.rawValue]
    }

    func delta(layer: Int, module: ProjectionModule, rows: UnsafePointer<Float>, count: Int,
               into delta: UnsafeMutablePointer<Float>) throws {
        let (inFeatures, outFeatures) = features[module.rawValue]
        let status = forward(userData, UInt32(layer), UInt32(module.rawValue), rows, delta, count, inFeatures, outFeatures)
        guard status == lmx_status(LMX_OK) else {
            throw LoRAMixerError.plugin("custom expert '\(name)' failed at layer \(layer) \(module.name) with status \(status)")
        }
    }
}
