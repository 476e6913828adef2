/// How a session's tokens are routed to experts (docs/ARCHITECTURE.md#gates).
public enum RoutingMode: Sendable, Equatable {
    /// Base model only.
    case none
    /// Router, top-K of p, gates renormalised over the selected experts.
    case learned
    /// Router, every expert, gates = p.
    case soft
    /// One weight per expert for every token, used as given.
    case fixed([Float])
    /// Every expert with gate 1/E.
    case uniform

    public var name: String {
        switch self {
        case .none: "none"
        case .learned: "learned"
        case .soft: "soft"
        case .fixed: "fixed"
        case .uniform: "uniform"
        }
    }

    var needsRouter: Bool { self == .learned || self == .soft }
}
