/// The seam between the base forward pass and whatever adapts its projections (the mixer's
/// routed experts). The model calls it; it knows nothing of experts or routers.
protocol ProjectionAdapter {
    /// Called once per layer, before any projection of it, with the router input
    /// h = RMSNorm_attn(x): [tokens, d_model]. Decides the gates used by every module of the layer.
    mutating func beginLayer(_ layer: Int, routerInput: UnsafePointer<Float>, tokens: Int)

    /// Adds this adapter's delta to one projection's output; throwing abandons the forward pass.
    ///   input: [tokens, in_features] (the module's own input), output: [tokens, out_features]
    func addDelta(layer: Int, module: ProjectionModule, input: UnsafePointer<Float>,
                  output: UnsafeMutablePointer<Float>, tokens: Int) throws
}
