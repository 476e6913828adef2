/// Something a mixer routes tokens to: it adds a delta to some projections of some layers.
/// Implementations are immutable and shared by every session that uses them, on any thread.
public protocol Expert: AnyObject, Sendable {
    var name: String { get }

    /// Whether the expert adds anything at (`layer`, `module`).
    func adapts(layer: Int, module: ProjectionModule) -> Bool

    /// The expert's full (already scaled) delta for a batch of one projection's input rows.
    ///   rows: [count, in_features], delta: [count, out_features], zeroed by the caller
    /// Throws to fail the evaluation (the session is then left as it was).
    func delta(layer: Int, module: ProjectionModule, rows: UnsafePointer<Float>, count: Int,
               into delta: UnsafeMutablePointer<Float>) throws
}

extension Expert {
    /// The deltas of several projections that read the same input rows (q, k, v; or gate, up), one
    /// output per module, each [count, out_features] and zeroed. The default computes them one by
    /// one; an expert can override it to share work between them (LoRA shares the A products).
    public func deltas(layer: Int, modules: [ProjectionModule], rows: UnsafePointer<Float>, count: Int,
                       into outputs: [UnsafeMutablePointer<Float>]) throws {
        for (module, output) in zip(modules, outputs) where adapts(layer: layer, module: module) {
            try delta(layer: layer, module: module, rows: rows, count: count, into: output)
        }
    }
}
