/// The gates one layer applies, per token: `gates` is dense `[tokens, experts]` (0 where an
/// expert is not applied) and `order` lists each token's applied experts, largest gate first,
/// padded with -1.
struct LayerGates {
    let tokens: Int
    let experts: Int
    var gates: [Float]
    var order: [Int32]

    init(tokens: Int, experts: Int) {
        self.tokens = tokens
        self.experts = experts
        gates = Array(repeating: 0, count: tokens * experts)
        order = Array(repeating: -1, count: tokens * experts)
    }

    /// Sets token `t`'s gates to `values` over `selected` experts.
    mutating func set(token t: Int, selected: [Int], values: [Float]) {
        let ranked = zip(selected, values).sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        for (slot, (expert, gate)) in ranked.enumerated() {
            gates[t * experts + expert] = gate
            order[t * experts + slot] = Int32(expert)
        }
    }
}
