extension TrainingGraph {
    /// Runs the batch forward, recording the tape. `routingNow` is the step's routing (the soft ->
    /// top-K schedule may differ from the run's).
    func forward(_ batch: PackedBatch, routingNow: TrainingOptions.Routing) throws -> Tape {
        let c = config, n = batch.count, d = c.hiddenSize
        let x = FloatBuffer(count: n * d)
        for (t, token) in batch.tokens.enumerated() { model.embedding.loadRow(Int(token), into: x.pointer + t * d) }
        var tape = Tape(finalHidden: x)
        if c.stateSpace != nil {
            for l in 0..<c.layerCount { tape.layers.append(mixerLayerForward(l, x: x, batch: batch, routingNow: routingNow)) }
            return tape
        }
        for (l, layer) in model.layers.enumerated() {
            let s = LayerTape(rows: n, config: c, experts: expertCount)
            s.xIn.pointer.update(from: x.pointer, count: n * d)
            // h1 = RMSNorm(x); gates from the router on h1; q, k, v (+ deltas); RoPE per example.
            rmsNormForward(s.h1.pointer, s.xIn.pointer, weight: layer.inputNorm, eps: c.rmsNormEps, tokens: n, dim: d)
            routeForward(layer: l, tape: s, batch: batch, routing: routingNow)
            project([.q, .k, .v], layer: l, input: s.h1.pointer, outputs: [s.q.pointer, s.k.pointer, s.v.pointer], tape: s, rows: n)
            ropeForward(s.q.pointer, tokens: n, heads: c.headCount, headDim: c.headDim, positions: { batch.positions[$0] },
                        inverseFrequencies: model.inverseFrequencies)
            ropeForward(s.k.pointer, tokens: n, heads: c.kvHeadCount, headDim: c.headDim, positions: { batch.positions[$0] },
                        inverseFrequencies: model.inverseFrequencies)
            for segment in batch.segments {
                let length = segment.count
                let probabilities = FloatBuffer(count: c.headCount * length * length)
                let start = segment.lowerBound
                sequenceAttentionForward(s.attention.pointer + start * c.qDim, probs: probabilities.pointer,
                                         q: s.q.pointer + start * c.qDim, k: s.k.pointer + start * c.kvDim,
                                         v: s.v.pointer + start * c.kvDim, tokens: length, heads: c.headCount,
                                         kvHeads: c.kvHeadCount, headDim: c.headDim, window: c.slidingWindows[l])
                s.probabilities.append(probabilities)
            }
            let projected = FloatBuffer(count: n * d)
            project([.o], layer: l, input: s.attention.pointer, outputs: [projected.pointer], tape: s, rows: n)
            for i in 0..<(n * d) { s.xMid.pointer[i] = s.xIn.pointer[i] + projected.pointer[i] }

            // h2 = RMSNorm(x_mid); x_out = x_mid + down(silu(gate h2) * up h2)
            rmsNormForward(s.h2.pointer, s.xMid.pointer, weight: layer.postAttentionNorm, eps: c.rmsNormEps, tokens: n, dim: d)
            project([.gate, .up], layer: l, input: s.h2.pointer, outputs: [s.gatePre.pointer, s.up.pointer], tape: s, rows: n)
            s.act.pointer.update(from: s.gatePre.pointer, count: n * c.intermediateSize)
            swigluForward(s.act.pointer, s.up.pointer, count: n * c.intermediateSize)
            project([.down], layer: l, input: s.act.pointer, outputs: [projected.pointer], tape: s, rows: n)
            for i in 0..<(n * d) { x.pointer[i] = s.xMid.pointer[i] + projected.pointer[i] }
            tape.layers.append(s)
        }
        return tape
    }

    /// One Mamba block: x += mixer(RMSNorm(x)), every sequence of the batch scanned from a zero
    /// state; the router reads the mixer input.
    private func mixerLayerForward(_ l: Int, x: FloatBuffer, batch: PackedBatch, routingNow: TrainingOptions.Routing) -> LayerTape {
        let c = config, n = batch.count, d = c.hiddenSize
        let s = LayerTape(rows: n, config: c, experts: expertCount)
        s.xIn.pointer.update(from: x.pointer, count: n * d)
        rmsNormForward(s.h1.pointer, s.xIn.pointer, weight: model.mixerLayers[l].norm, eps: c.rmsNormEps, tokens: n, dim: d)
        routeForward(layer: l, tape: s, batch: batch, routing: routingNow)
        guard let mixer = s.mixer else { return s }
        let mixed = FloatBuffer(count: n * d)
        model.mixerForward(layer: l, mixer, output: mixed.pointer, rows: n, sequences: batch.segments, state: nil, pool: pool) {
            module, input, output in
            project([module], layer: l, input: input, outputs: [output], tape: s, rows: n)
        }
        for i in 0..<(n * d) { x.pointer[i] = s.xIn.pointer[i] + mixed.pointer[i] }
        return s
    }

    /// outputs[m] = u W_m^T + b_m + sum_e g[:, e] * s_e * (u A_e^T) B_e^T, recording u A_e^T.
    private func project(_ modules: [ProjectionModule], layer l: Int, input u: UnsafeMutablePointer<Float>,
                         outputs: [UnsafeMutablePointer<Float>], tape s: LayerTape, rows n: Int) {
        let weights = modules.map { model.projection(layer: l, module: $0) }
        withOptionalPointers(weights.map(\.bias)) { biases in
            linearForward(outputs, u, weights.map(\.weight), biases: biases, tokens: n, pool: pool)
        }
        let e = expertCount
        for expert in 0..<e {
            let column = (0..<n).map { s.gates[$0 * e + expert] }
            guard column.contains(where: { $0 != 0 }) else { continue }
            for (m, module) in modules.enumerated() {
                guard let slot = mixture.slots[expert][l][module.rawValue] else { continue }
                let (a, b) = (mixture.parameters[slot.a], mixture.parameters[slot.b])
                let z = FloatBuffer(count: n * slot.rank)
                linearForward(z.pointer, u, a.values.pointer, rows: slot.rank, cols: a.shape[1], tokens: n, pool: pool)
                s.loraInputs[LayerTape.key(expert: expert, module: module)] = z
                let gated = FloatBuffer(count: n * slot.rank)
                for t in 0..<n where column[t] != 0 {
                    let factor = column[t] * slot.scale
                    for j in 0..<slot.rank { gated.pointer[t * slot.rank + j] = factor * z.pointer[t * slot.rank + j] }
                }
                let width = b.shape[0]
                let delta = FloatBuffer(count: n * width)
                linearForward(delta.pointer, gated.pointer, b.values.pointer, rows: width, cols: slot.rank, tokens: n, pool: pool)
                for i in 0..<(n * width) { outputs[m][i] += delta.pointer[i] }
            }
        }
    }

    /// The gates of layer `l` for every row: from the router (soft / top-K), or one-hot labels.
    /// Also records p and each row's top-K set, which the load statistics use in every mode.
    private func routeForward(layer l: Int, tape s: LayerTape, batch: PackedBatch, routing: TrainingOptions.Routing) {
        let n = batch.count, e = expertCount, d = config.hiddenSize
        if let router = mixture.router?[l] {
            let p = FloatBuffer(count: n * e)
            linearForward(p.pointer, s.h1.pointer, mixture.parameters[router.weight].values.pointer, rows: e, cols: d, tokens: n)
            if let context = router.context {
                let mean = FloatBuffer(count: n * d)
                for segment in batch.segments {
                    var sum = [Float](repeating: 0, count: d)
                    for t in segment {
                        let count = Float(batch.positions[t] + 1)
                        for i in 0..<d {
                            sum[i] += s.h1.pointer[t * d + i]
                            mean.pointer[t * d + i] = sum[i] / count
                        }
                    }
                }
                let contextLogits = FloatBuffer(count: n * e)
                linearForward(contextLogits.pointer, mean.pointer, mixture.parameters[context].values.pointer, rows: e, cols: d, tokens: n)
                for i in 0..<(n * e) { p.pointer[i] += contextLogits.pointer[i] }
                s.contextMean = mean
            }
            let bias = mixture.parameters[router.bias].values.pointer
            for t in 0..<n {
                let row = p.pointer + t * e
                for j in 0..<e { row[j] = (row[j] + bias[j]) / mixture.temperature }
                softmaxInPlace(row, e)
                s.selected.append(topIndices(row, e, mixture.topK))
            }
            s.p = p
        }
        for t in 0..<n {
            let gates = s.gates.pointer + t * e
            switch routing {
            case .label:
                gates[batch.labels[t]] = 1
            case .soft:
                if let p = s.p { gates.update(from: p.pointer + t * e, count: e) }
            case .topk:
                guard let p = s.p else { continue }
                let row = p.pointer + t * e
                let total = s.selected[t].reduce(Float(0)) { $0 + row[$1] }
                for j in s.selected[t] { gates[j] = row[j] / total }
            }
        }
    }
}
