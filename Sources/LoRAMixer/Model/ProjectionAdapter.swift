/// The seam between the base forward pass and whatever adapts its projections (the mixer's
/// routed experts). The model calls it; it knows nothing of experts or routers.
protocol ProjectionAdapter {
    /// Whether `addDeltas` can throw (code outside the library computes a delta). If not, the
    /// forward pass does not copy a recurrent state it would otherwise restore after a failure.
    var canFail: Bool { get }

    /// Called once per layer, before any projection of it, with the router input
    /// h = RMSNorm_attn(x): [tokens, d_model]. Decides the gates used by every module of the layer.
    /// Throwing (the host asked to abort) abandons the forward pass.
    mutating func beginLayer(_ layer: Int, routerInput: UnsafePointer<Float>, tokens: Int) throws

    /// Adds this adapter's deltas to the outputs of projections that share one input (q, k, v; or
    /// gate, up; or a single module); throwing abandons the forward pass.
    ///   input: [tokens, in_features] (the modules' input), outputs[i]: [tokens, out_features of modules[i]]
    func addDeltas(layer: Int, modules: [ProjectionModule], input: UnsafePointer<Float>,
                   outputs: [UnsafeMutablePointer<Float>], tokens: Int) throws
}
