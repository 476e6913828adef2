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
