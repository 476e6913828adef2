/// The projections of a layer that experts can adapt. Raw values are the C ABI's
/// `LMX_MODULE_*` numbers and never change. Which of them a model has depends on its family
/// (`ModelConfig.modules`): attention + MLP projections for the llama family, the four linear maps
/// around the selective scan for Mamba.
public enum ProjectionModule: Int, CaseIterable, Sendable, Comparable {
    case q = 0, k, v, o, gate, up, down
    case inProj = 7, xProj, dtProj, outProj

    /// The name Hugging Face and PEFT use (`q_proj`, `in_proj`, ...).
    public var name: String {
        switch self {
        case .q: "q_proj"
        case .k: "k_proj"
        case .v: "v_proj"
        case .o: "o_proj"
        case .gate: "gate_proj"
        case .up: "up_proj"
        case .down: "down_proj"
        case .inProj: "in_proj"
        case .xProj: "x_proj"
        case .dtProj: "dt_proj"
        case .outProj: "out_proj"
        }
    }

    /// The submodule holding it in a layer (`model.layers.{i}.<block>.<name>`,
    /// `backbone.layers.{i}.<block>.<name>`).
    public var block: String {
        switch self {
        case .q, .k, .v, .o: "self_attn"
        case .gate, .up, .down: "mlp"
        case .inProj, .xProj, .dtProj, .outProj: "mixer"
        }
    }

    /// The decoder-layer modules of the llama family, and the mixer modules of Mamba.
    static let decoderModules: [ProjectionModule] = [.q, .k, .v, .o, .gate, .up, .down]
    static let stateSpaceModules: [ProjectionModule] = [.inProj, .xProj, .dtProj, .outProj]

    public init?(name: String) {
        guard let module = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = module
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension ModelConfig {
    /// The projections this model has, in `LMX_MODULE_*` order.
    public var modules: [ProjectionModule] {
        family.isStateSpace ? ProjectionModule.stateSpaceModules : ProjectionModule.decoderModules
    }

    /// `modules`' names, for messages.
    public var moduleNames: String { modules.map(\.name).joined(separator: ", ") }

    /// The module with C ABI value `value`, if this model has it; `what` names the argument.
    public func module(rawValue value: Int, _ what: String) throws -> ProjectionModule {
        guard let module = ProjectionModule(rawValue: value) else {
            throw LoRAMixerError.invalidArgument(
                "\(what) \(value) is not an LMX_MODULE_* value (0...\(ProjectionModule.allCases.count - 1))")
        }
        return try check(module, what)
    }

    /// The module named `name` (`in_proj`, ...), if this model has it; `what` names the argument.
    public func module(named name: String, _ what: String) throws -> ProjectionModule {
        guard let module = ProjectionModule(name: name) else {
            throw LoRAMixerError.invalidArgument("\(what) '\(name)' is not a projection (this \(architecture) model has \(moduleNames))")
        }
        return try check(module, what)
    }

    /// Throws unless this model has `module`.
    public func check(_ module: ProjectionModule, _ what: String) throws -> ProjectionModule {
        guard modules.contains(module) else {
            throw LoRAMixerError.invalidArgument(
                "\(what) \(module.name) does not exist in a \(architecture) model (its projections: \(moduleNames))")
        }
        return module
    }

    /// The Hugging Face path of `module` in `layer`: `model.layers.3.self_attn.q_proj`,
    /// `backbone.layers.3.mixer.in_proj`. PEFT prefixes it with `base_model.model.`.
    public func modulePath(layer: Int, module: ProjectionModule) -> String {
        "\(family.isStateSpace ? "backbone" : "model").layers.\(layer).\(module.block).\(module.name)"
    }

    /// `(in, out)` features of `module`: a LoRA A for it is [r, in] and B is [out, r]. (0, 0) for a
    /// module the model does not have (entry points refuse those first, with `check`).
    public func shape(of module: ProjectionModule) -> (inFeatures: Int, outFeatures: Int) {
        if let ssm = stateSpace {
            switch module {
            case .inProj: return (hiddenSize, 2 * ssm.innerSize)
            case .xProj: return (ssm.innerSize, ssm.timeStepRank + 2 * ssm.stateSize)
            case .dtProj: return (ssm.timeStepRank, ssm.innerSize)
            case .outProj: return (ssm.innerSize, hiddenSize)
            default: return (0, 0)
            }
        }
        switch module {
        case .q: return (hiddenSize, qDim)
        case .k, .v: return (hiddenSize, kvDim)
        case .o: return (qDim, hiddenSize)
        case .gate, .up: return (hiddenSize, intermediateSize)
        case .down: return (intermediateSize, hiddenSize)
        default: return (0, 0)
        }
    }
}
