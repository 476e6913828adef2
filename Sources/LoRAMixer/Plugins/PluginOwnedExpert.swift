/// An expert a plugin registered. Holding the plugin's library keeps its code loaded, and its
/// shutdown waiting, until the last mixer and session using the expert let go.
final class PluginOwnedExpert: Expert, @unchecked Sendable {
    let inner: any Expert
    let library: PluginLibrary

    init(_ inner: any Expert, library: PluginLibrary) {
        self.inner = inner
        self.library = library
    }

    var name: String { inner.name }

    func adapts(layer: Int, module: ProjectionModule) -> Bool {
        inner.adapts(layer: layer, module: module)
    }

    func delta(layer: Int, module: ProjectionModule, rows: UnsafePointer<Float>, count: Int,
               into delta: UnsafeMutablePointer<Float>) throws {
        try inner.delta(layer: layer, module: module, rows: rows, count: count, into: delta)
    }
}
