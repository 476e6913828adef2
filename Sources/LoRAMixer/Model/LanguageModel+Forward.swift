/// Which positions' logits a forward pass produces.
public enum LogitsSelection: Sendable {
    case none, last, all
}

extension LanguageModel {
    /// Runs `tokens` (already validated: ids < vocab, room in `state`) after the positions held in
    /// `state`, advancing it, and returns the final hidden states (before the last norm):
    /// `[tokens, d_model]`; `logits(hidden:rows:pool:)` turns rows of them into logits. If the
    /// adapter throws, `state` is left as it was.
    func forward<Adapter: ProjectionAdapter>(
        tokens: [Int32], state: SequenceState, adapter: inout Adapter, pool: ThreadPool? = nil
    ) throws -> [Float] {
        let saved = adapter.canFail ? state.snapshot() : nil
        do {
            if let recurrent = state as? RecurrentState {
                return try stateSpaceForward(tokens: tokens, state: recurrent, adapter: &adapter, pool: pool)
            }
            guard let cache = state as? KVCache else { throw LoRAMixerError.state("no state for this model") }
            let buffers = ForwardBuffers(tokens: tokens.count, config: config)
            defer { buffers.deallocate() }
            try forwardLayers(tokens: tokens, cache: cache, adapter: &adapter, pool: pool, buffers: buffers)
            return Array(UnsafeBufferPointer(start: buffers.x, count: tokens.count * config.hiddenSize))
        } catch {
            if let saved { state.restore(saved) }
            throw error
        }
    }

    private func forwardLayers<Adapter: ProjectionAdapter>(
        tokens: [Int32], cache: KVCache, adapter: inout Adapter, pool: ThreadPool?, buffers b: ForwardBuffers
    ) throws {
        let c = config
        let n = tokens.count
        let d = c.hiddenSize
        for (t, token) in tokens.enumerated() { embedding.loadRow(Int(token), into: b.x + t * d) }
        let firstPosition = cache.count

        for (l, layer) in layers.enumerated() {
            // Attention block: h = RMSNorm(x); x += o_proj(attention(q_proj h, k_proj h, v_proj h))
            rmsNormForward(b.h, b.x, weight: layer.inputNorm, eps: c.rmsNormEps, tokens: n, dim: d)
            try adapter.beginLayer(l, routerInput: b.h, tokens: n)
            try project([.q, .k, .v], input: b.h, outputs: [b.q, b.k, b.v], l, &adapter, n, pool)
            ropeForward(b.q, tokens: n, heads: c.headCount, headDim: c.headDim, firstPosition: firstPosition,
                        inverseFrequencies: inverseFrequencies)
            ropeForward(b.k, tokens: n, heads: c.kvHeadCount, headDim: c.headDim, firstPosition: firstPosition,
                        inverseFrequencies: inverseFrequencies)
            cache.append(layer: l, keys: b.k, values: b.v, tokens: n)
            let run = { (heads: Range<Int>) in
                attentionForward(b.attention, q: b.q, keys: { UnsafePointer(cache.keys(layer: l, head: $0)) },
                                 values: { UnsafePointer(cache.values(layer: l, head: $0)) }, tokens: n,
                                 heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDim,
                                 firstPosition: firstPosition, window: c.slidingWindows[l], headRange: heads)
            }
            if let pool { pool.parallelRanges(c.headCount, run) } else { run(0..<c.headCount) }
            try project([.o], input: b.attention, outputs: [b.projected], l, &adapter, n, pool)
            for i in 0..<(n * d) { b.x[i] += b.projected[i] }

            // MLP block: x += down_proj(silu(gate_proj h) * up_proj h), h = RMSNorm(x)
            rmsNormForward(b.h, b.x, weight: layer.postAttentionNorm, eps: c.rmsNormEps, tokens: n, dim: d)
            try project([.gate, .up], input: b.h, outputs: [b.gate, b.up], l, &adapter, n, pool)
            swigluForward(b.gate, b.up, count: n * c.intermediateSize)
            try project([.down], input: b.gate, outputs: [b.projected], l, &adapter, n, pool)
            for i in 0..<(n * d) { b.x[i] += b.projected[i] }
        }
        cache.commit(tokens: n)
    }

    /// Logits of `rows` hidden states from `forward`: final RMSNorm, then the LM head.
    ///   hidden: [rows, d_model] -> [rows, vocab]
    func logits(hidden: [Float], rows: Int, pool: ThreadPool? = nil) -> [Float] {
        let d = config.hiddenSize
        var normalized = [Float](repeating: 0, count: rows * d)
        rmsNormForward(&normalized, hidden, weight: finalNorm, eps: config.rmsNormEps, tokens: rows, dim: d)
        var logits = [Float](repeating: 0, count: rows * config.vocabSize)
        logits.withUnsafeMutableBufferPointer { logits in
            linearForward(logits.baseAddress!, normalized, lmHead, bias: nil, tokens: rows, pool: pool)
        }
        return logits
    }

    /// outputs[i] = input W_i^T + bias_i + the adapter's delta, for projections of layer `l` that
    /// share `input` (the adapter sees them together, so experts can share work between them).
    func project<Adapter: ProjectionAdapter>(
        _ modules: [ProjectionModule], input: UnsafeMutablePointer<Float>, outputs: [UnsafeMutablePointer<Float>],
        _ l: Int, _ adapter: inout Adapter, _ tokens: Int, _ pool: ThreadPool?
    ) throws {
        let projections = modules.map { projection(layer: l, module: $0) }
        withOptionalPointers(projections.map(\.bias)) { biases in
            linearForward(outputs, input, projections.map(\.weight), biases: biases, tokens: tokens, pool: pool)
        }
        try adapter.addDeltas(layer: l, modules: modules, input: input, outputs: outputs, tokens: tokens)
    }
}

/// The activations of one forward pass, allocated once for all layers.
struct ForwardBuffers {
    let x, h, q, k, v, attention, projected, gate, up: UnsafeMutablePointer<Float>

    init(tokens n: Int, config c: ModelConfig) {
        func buffer(_ width: Int) -> UnsafeMutablePointer<Float> {
            let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(n * width, 1))
            pointer.initialize(repeating: 0, count: max(n * width, 1))
            return pointer
        }
        (x, h, projected) = (buffer(c.hiddenSize), buffer(c.hiddenSize), buffer(c.hiddenSize))
        (q, attention) = (buffer(c.qDim), buffer(c.qDim))
        (k, v) = (buffer(c.kvDim), buffer(c.kvDim))
        (gate, up) = (buffer(c.intermediateSize), buffer(c.intermediateSize))
    }

    func deallocate() {
        for pointer in [x, h, q, k, v, attention, projected, gate, up] { pointer.deallocate() }
    }
}

/// Calls `body` with pointers to the arrays' storage (nil for nil arrays), valid during the call.
func withOptionalPointers<R>(_ arrays: [[Float]?], _ body: ([UnsafePointer<Float>?]) throws -> R) rethrows -> R {
    var pointers: [UnsafePointer<Float>?] = []
    func nest(_ index: Int) throws -> R {
        guard index < arrays.count else { return try body(pointers) }
        guard let array = arrays[index] else {
            pointers.append(nil)
            return try nest(index + 1)
        }
        return try array.withUnsafeBufferPointer { buffer in
            pointers.append(buffer.baseAddress)
            return try nest(index + 1)
        }
    }
    return try nest(0)
}
