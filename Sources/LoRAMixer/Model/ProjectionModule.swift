/// The projections of a decoder layer that experts can adapt. Raw values are the C ABI's
/// `LMX_MODULE_*` numbers and never change.
public enum ProjectionModule: Int, CaseIterable, Sendable, Comparable {
    case q = 0, k, v, o, gate, up, down

    /// The name Hugging Face and PEFT use (`q_proj`, ...).
    public var name: String {
        switch self {
        case .q: "q_proj"
        case .k: "k_proj"
        case .v: "v_proj"
        case .o: "o_proj"
        case .gate: "gate_proj"
        case .up: "up_proj"
        case .down: "down_proj"
        }
    }

    /// The submodule holding it in a llama-family layer (`model.layers.{i}.<block>.<name>`).
    public var block: String {
        switch self {
        case .q, .k, .v, .o: "self_attn"
        case .gate, .up, .down: "mlp"
        }
    }

    public init?(name: String) {
        guard let module = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = module
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    static let supportedNames = allCases.map(\.name).joined(separator: ", ")
}

extension ModelConfig {
    /// `(in, out)` features of `module`: a LoRA A for it is [r, in] and B is [out, r].
    public func shape(of module: ProjectionModule) -> (inFeatures: Int, outFeatures: Int) {
        switch module {
        case .q: (hiddenSize, qDim)
        case .k, .v: (hiddenSize, kvDim)
        case .o: (qDim, hiddenSize)
        case .gate, .up: (hiddenSize, intermediateSize)
        case .down: (intermediateSize, hiddenSize)
        }
    }
}
