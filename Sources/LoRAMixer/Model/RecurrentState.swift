/// A state-space model's memory of a sequence: per layer, the last K - 1 inputs of the causal
/// convolution ([channels, K - 1]) and the SSM state ([channels, N]). Its size does not depend on
/// how many positions were processed; `capacity` only enforces the session's n_ctx.
final class RecurrentState: SequenceState {
    let layers: Int
    let capacity: Int
    private let convWidth: Int
    private let ssmWidth: Int
    /// [layers][channels * (K - 1)] then [layers][channels * N], contiguous.
    private let values: FloatBuffer
    private(set) var count = 0

    init(config: StateSpaceConfig, layers: Int, capacity: Int) throws {
        (self.layers, self.capacity) = (layers, capacity)
        convWidth = try checkedProduct([config.innerSize, config.convKernel - 1], "convolution state")
        ssmWidth = try checkedProduct([config.innerSize, config.stateSize], "SSM state")
        values = FloatBuffer(count: try checkedProduct([layers, convWidth + ssmWidth], "recurrent state"))
    }

    func convolution(layer: Int) -> UnsafeMutablePointer<Float> { values.pointer + layer * convWidth }
    func ssm(layer: Int) -> UnsafeMutablePointer<Float> { values.pointer + layers * convWidth + layer * ssmWidth }

    func commit(tokens: Int) { count += tokens }

    func reset() {
        values.zero()
        count = 0
    }

    func snapshot() -> SequenceSnapshot { SequenceSnapshot(count: count, values: values.array) }

    func restore(_ snapshot: SequenceSnapshot) {
        count = snapshot.count
        snapshot.values.withUnsafeBufferPointer { values.pointer.update(from: $0.baseAddress!, count: values.count) }
    }
}
