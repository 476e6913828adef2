/// For every processed token and layer: the experts applied, largest gate first, and their gates.
/// Layout `[token][layer][slot]`, `width` slots per entry (the session's expert count), unused
/// slots -1 / 0.
public struct RoutingTrace: Sendable {
    public let layers: Int
    public let width: Int
    public private(set) var tokens: [Int32] = []
    public private(set) var expertIDs: [Int32] = []
    public private(set) var gates: [Float] = []

    init(layers: Int, width: Int) {
        self.layers = layers
        self.width = width
    }

    public var tokenCount: Int { tokens.count }

    /// Records one forward pass: `perLayer[l]` holds the gates of layer l for these tokens.
    mutating func append(tokens newTokens: [Int32], perLayer: [LayerGates]) {
        for t in newTokens.indices {
            tokens.append(newTokens[t])
            for l in 0..<layers {
                guard l < perLayer.count, perLayer[l].experts == width else {
                    expertIDs.append(contentsOf: repeatElement(-1, count: width))
                    gates.append(contentsOf: repeatElement(0, count: width))
                    continue
                }
                let entry = perLayer[l]
                for slot in 0..<width {
                    let id = entry.order[t * width + slot]
                    expertIDs.append(id)
                    gates.append(id < 0 ? 0 : entry.gates[t * width + Int(id)])
                }
            }
        }
    }

    /// Keeps the entries of the first `count` tokens.
    mutating func truncate(toTokens count: Int) {
        guard count < tokens.count else { return }
        tokens.removeSubrange(count...)
        expertIDs.removeSubrange((count * layers * width)...)
        gates.removeSubrange((count * layers * width)...)
    }

    mutating func removeAll() {
        tokens.removeAll()
        expertIDs.removeAll()
        gates.removeAll()
    }

    /// The entry of `token` at `layer`: (expert, gate) pairs, largest gate first.
    public func entry(token: Int, layer: Int) -> [(expert: Int, gate: Float)] {
        let start = (token * layers + layer) * width
        return (start..<(start + width)).compactMap { expertIDs[$0] < 0 ? nil : (Int(expertIDs[$0]), gates[$0]) }
    }
}
