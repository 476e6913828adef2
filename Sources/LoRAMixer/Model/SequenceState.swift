/// What a session keeps of the positions it has processed: a KV cache for attention models, a
/// fixed-size recurrent state for state-space models. Created by `LanguageModel.makeState`.
protocol SequenceState: AnyObject {
    /// Positions processed so far.
    var count: Int { get }
    /// Positions the session may hold (its n_ctx).
    var capacity: Int { get }
    func reset()
    /// A copy of the state to go back to if a multi-step call fails.
    func snapshot() -> SequenceSnapshot
    func restore(_ snapshot: SequenceSnapshot)
}

extension SequenceState {
    var remaining: Int { capacity - count }
}

/// A saved `SequenceState`: a KV cache is restored by forgetting later positions; a recurrent
/// state, which cannot be rewound, keeps a copy of its values.
struct SequenceSnapshot {
    let count: Int
    var values: [Float] = []
}

extension KVCache: SequenceState {
    func snapshot() -> SequenceSnapshot { SequenceSnapshot(count: count) }
    func restore(_ snapshot: SequenceSnapshot) { truncate(to: snapshot.count) }
}
