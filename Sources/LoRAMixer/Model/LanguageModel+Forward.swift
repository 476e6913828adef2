/// Which positions' logits a forward pass produces.
public enum LogitsSelection: Sendable {
    case none, last, all
}

extension LanguageModel {
    /// Runs `tokens` (already validated: ids < vocab, room in `cache`) after the positions held in
    /// `cache`, appending their keys and values, and returns logits: `[rows, vocab]` for the
    /// selected rows (empty for `.none`). If the adapter throws, `cache` is left as it was.
    func forward<Adapter: ProjectionAdapter>(
        tokens: [Int32], cache: inout KVCache, adapter: inout Adapter, logits selection: LogitsSelection,
        pool: ThreadPool? = nil
    ) throws -> [Float] {
        let held = cache.count
        do {
            return try forwardLayers(tokens: tokens, cache: &cache, adapter: &adapter, logits: selection, pool: pool)
        } catch {
            cache.truncate(to: held)
            throw error
        }
    }

    private func forwardLayers<Adapter: ProjectionAdapter>(
        tokens: [Int32], cache: inout KVCache, adapter: inout Adapter, logits selection: LogitsSelection,
        pool: ThreadPool?
    ) throws -> [Float] {
        let c = config
        let n = tokens.count
        let d = c.hiddenSize
        var x = [Float](repeating: 0, count: n * d)
        x.withUnsafeMutableBufferPointer { x in
            for (t, token) in tokens.enumerated() { embedding.loadRow(Int(token), into: x.baseAddress! + t * d) }
        }
        var h = [Float](repeating: 0, count: n * d)
        var q = [Float](repeating: 0, count: n * c.qDim)
        var k = [Float](repeating: 0, count: n * c.kvDim)
        var v = [Float](repeating: 0, count: n * c.kvDim)
        var attention = [Float](repeating: 0, count: n * c.qDim)
        var projected = [Float](repeating: 0, count: n * d)
        var gate = [Float](repeating: 0, count: n * c.intermediateSize)
        var up = [Float](repeating: 0, count: n * c.intermediateSize)
        let firstPosition = cache.count

        for (l, layer) in layers.enumerated() {
            // Attention block: h = RMSNorm(x); x += o_proj(attention(q_proj h, k_proj h, v_proj h))
            rmsNormForward(&h, x, weight: layer.inputNorm, eps: c.rmsNormEps, tokens: n, dim: d)
            h.withUnsafeBufferPointer { adapter.beginLayer(l, routerInput: $0.baseAddress!, tokens: n) }
            try project(&q, h, layer, .q, l, &adapter, n, pool)
            try project(&k, h, layer, .k, l, &adapter, n, pool)
            try project(&v, h, layer, .v, l, &adapter, n, pool)
            ropeForward(&q, tokens: n, heads: c.headCount, headDim: c.headDim, firstPosition: firstPosition,
                        inverseFrequencies: inverseFrequencies)
            ropeForward(&k, tokens: n, heads: c.kvHeadCount, headDim: c.headDim, firstPosition: firstPosition,
                        inverseFrequencies: inverseFrequencies)
            k.withUnsafeBufferPointer { keys in
                v.withUnsafeBufferPointer { values in cache.append(layer: l, keys: keys, values: values) }
            }
            attention.withUnsafeMutableBufferPointer { attention in
                q.withUnsafeBufferPointer { q in
                    cache.keys[l].withUnsafeBufferPointer { keys in
                        cache.values[l].withUnsafeBufferPointer { values in
                            let (out, q, keys, values) = (attention.baseAddress!, q.baseAddress!, keys.baseAddress!, values.baseAddress!)
                            let run = { (heads: Range<Int>) in
                                attentionForward(out, q: q, keys: keys, values: values, tokens: n, heads: c.headCount,
                                                 kvHeads: c.kvHeadCount, headDim: c.headDim, firstPosition: firstPosition,
                                                 window: c.slidingWindows[l], headRange: heads)
                            }
                            if let pool { pool.parallelRanges(c.headCount, run) } else { run(0..<c.headCount) }
                        }
                    }
                }
            }
            try project(&projected, attention, layer, .o, l, &adapter, n, pool)
            for i in 0..<(n * d) { x[i] += projected[i] }

            // MLP block: x += down_proj(silu(gate_proj h) * up_proj h), h = RMSNorm(x)
            rmsNormForward(&h, x, weight: layer.postAttentionNorm, eps: c.rmsNormEps, tokens: n, dim: d)
            try project(&gate, h, layer, .gate, l, &adapter, n, pool)
            try project(&up, h, layer, .up, l, &adapter, n, pool)
            swigluForward(&gate, up, count: n * c.intermediateSize)
            try project(&projected, gate, layer, .down, l, &adapter, n, pool)
            for i in 0..<(n * d) { x[i] += projected[i] }
        }
        cache.commit(tokens: n)

        let rows: Range<Int>
        switch selection {
        case .none: return []
        case .last: rows = (n - 1)..<n
        case .all: rows = 0..<n
        }
        let selected = Array(x[(rows.lowerBound * d)..<(rows.upperBound * d)])
        rmsNormForward(&h, selected, weight: finalNorm, eps: c.rmsNormEps, tokens: rows.count, dim: d)
        var logits = [Float](repeating: 0, count: rows.count * c.vocabSize)
        linearForward(&logits, h, lmHead, bias: nil, tokens: rows.count, pool: pool)
        return logits
    }

    /// output = input W^T + bias + the adapter's delta, for one projection of layer `l`.
    private func project<Adapter: ProjectionAdapter>(
        _ output: inout [Float], _ input: [Float], _ layer: DecoderLayerWeights, _ module: ProjectionModule,
        _ l: Int, _ adapter: inout Adapter, _ tokens: Int, _ pool: ThreadPool?
    ) throws {
        let projection = layer.projections[module.rawValue]
        try input.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { output in
                let bias = projection.bias
                bias.withOptionalPointer {
                    linearForward(output.baseAddress!, input.baseAddress!, projection.weight, bias: $0, tokens: tokens, pool: pool)
                }
                try adapter.addDelta(layer: l, module: module, input: input.baseAddress!, output: output.baseAddress!, tokens: tokens)
            }
        }
    }
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with a pointer to the array's storage, or nil.
    func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
        guard let array = self else { return try body(nil) }
        return try array.withUnsafeBufferPointer { try body($0.baseAddress) }
    }
}
