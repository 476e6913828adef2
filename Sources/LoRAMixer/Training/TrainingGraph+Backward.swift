import Glibc

extension TrainingGraph {
    /// The batch's loss terms and routing statistics; adds the gradient of the total loss into
    /// `gradients` (indexed like `mixture.parameters`; nil for frozen tensors). `preserve` gives
    /// L_preserve's weight and the starting values of the sensitive tensors.
    func backward(_ batch: PackedBatch, tape: Tape, routingNow: TrainingOptions.Routing, gradients: [FloatBuffer?],
                  preserve: (beta: Float, reference: [Int: FloatBuffer])) -> (Losses, RoutingStatistics) {
        let c = config, n = batch.count, d = c.hiddenSize
        var losses = Losses()
        let dx = FloatBuffer(count: n * d)
        losses.crossEntropy = headBackward(batch, hidden: tape.finalHidden, into: dx)
        let (statistics, rslGradients) = routingSpecialization(tape, rows: n, losses: &losses)

        for l in (0..<c.layerCount).reversed() {
            let s = tape.layers[l]
            let dGates = FloatBuffer(count: n * expertCount)
            let dH1: FloatBuffer, inputNorm: [Float]
            if let mixer = s.mixer {
                dH1 = mixerBackward(l, mixer, batch: batch, dx: dx, tape: s, dGates: dGates, gradients: gradients)
                inputNorm = model.mixerLayers[l].norm
            } else {
                dH1 = decoderBlockBackward(l, batch: batch, dx: dx, tape: s, dGates: dGates, gradients: gradients)
                inputNorm = model.layers[l].inputNorm
            }
            routerBackward(layer: l, tape: s, batch: batch, routing: routingNow, dGates: dGates, rsl: rslGradients[l],
                           dH1: dH1, gradients: gradients)
            rmsNormBackward(dx.pointer, dH1.pointer, s.xIn.pointer, weight: inputNorm, eps: c.rmsNormEps, tokens: n, dim: d)
        }

        var preserveLoss: Double = 0
        for (index, reference) in preserve.reference.sorted(by: { $0.key < $1.key }) {
            let values = mixture.parameters[index].values
            let gradient = gradients[index]
            for i in 0..<values.count {
                let difference = values[i] - reference[i]
                preserveLoss += Double(difference * difference)
                gradient?.pointer[i] += 2 * preserve.beta * difference
            }
        }
        losses.preserve = Double(preserve.beta) * preserveLoss
        return (losses, statistics)
    }

    /// Backward of a llama-family layer from d x_out (in `dx`, which receives d x_mid's residual
    /// share through the MLP norm) down to d h1, the gradient at the attention block's normalised input.
    private func decoderBlockBackward(_ l: Int, batch: PackedBatch, dx: FloatBuffer, tape s: LayerTape, dGates: FloatBuffer,
                                      gradients: [FloatBuffer?]) -> FloatBuffer {
        let c = config, n = batch.count, d = c.hiddenSize, layer = model.layers[l]
        // MLP block, from d x_out: down, SwiGLU, gate/up, then the norm into d x_mid.
        let dAct = FloatBuffer(count: n * c.intermediateSize)
        projectBackward([.down], layer: l, input: s.act, dOutputs: [dx], dInput: dAct, tape: s, dGates: dGates,
                        gradients: gradients, rows: n)
        let (dGate, dUp) = (FloatBuffer(count: n * c.intermediateSize), FloatBuffer(count: n * c.intermediateSize))
        swigluBackward(dGate: dGate.pointer, dUp: dUp.pointer, dAct.pointer, gate: s.gatePre.pointer, up: s.up.pointer,
                       count: n * c.intermediateSize)
        let dH2 = FloatBuffer(count: n * d)
        projectBackward([.gate, .up], layer: l, input: s.h2, dOutputs: [dGate, dUp], dInput: dH2, tape: s, dGates: dGates,
                        gradients: gradients, rows: n)
        rmsNormBackward(dx.pointer, dH2.pointer, s.xMid.pointer, weight: layer.postAttentionNorm, eps: c.rmsNormEps,
                        tokens: n, dim: d)

        // Attention block, from d x_mid: o, attention per example, RoPE, q/k/v, router, norm.
        let dAttention = FloatBuffer(count: n * c.qDim)
        projectBackward([.o], layer: l, input: s.attention, dOutputs: [dx], dInput: dAttention, tape: s, dGates: dGates,
                        gradients: gradients, rows: n)
        let (dq, dk, dv) = (FloatBuffer(count: n * c.qDim), FloatBuffer(count: n * c.kvDim), FloatBuffer(count: n * c.kvDim))
        for (index, segment) in batch.segments.enumerated() {
            let start = segment.lowerBound
            sequenceAttentionBackward(
                dq: dq.pointer + start * c.qDim, dk: dk.pointer + start * c.kvDim, dv: dv.pointer + start * c.kvDim,
                dAttention.pointer + start * c.qDim, probs: s.probabilities[index].pointer, q: s.q.pointer + start * c.qDim,
                k: s.k.pointer + start * c.kvDim, v: s.v.pointer + start * c.kvDim, tokens: segment.count,
                heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDim, window: c.slidingWindows[l])
        }
        ropeBackward(dq.pointer, tokens: n, heads: c.headCount, headDim: c.headDim, positions: { batch.positions[$0] },
                     inverseFrequencies: model.inverseFrequencies)
        ropeBackward(dk.pointer, tokens: n, heads: c.kvHeadCount, headDim: c.headDim, positions: { batch.positions[$0] },
                     inverseFrequencies: model.inverseFrequencies)
        let dH1 = FloatBuffer(count: n * d)
        projectBackward([.q, .k, .v], layer: l, input: s.h1, dOutputs: [dq, dk, dv], dInput: dH1, tape: s, dGates: dGates,
                        gradients: gradients, rows: n)
        return dH1
    }

    /// Final norm, LM head and cross-entropy on the rows that predict a target; adds d loss /
    /// d hidden into `dx`. Returns the mean cross-entropy.
    private func headBackward(_ batch: PackedBatch, hidden: FloatBuffer, into dx: FloatBuffer) -> Double {
        let d = config.hiddenSize, vocab = config.vocabSize, rows = batch.targetRows.count
        guard rows > 0 else { return 0 }
        let gathered = FloatBuffer(count: rows * d), normalized = FloatBuffer(count: rows * d)
        for (r, row) in batch.targetRows.enumerated() {
            (gathered.pointer + r * d).update(from: hidden.pointer + row * d, count: d)
        }
        rmsNormForward(normalized.pointer, gathered.pointer, weight: model.finalNorm, eps: config.rmsNormEps, tokens: rows, dim: d)
        let logits = FloatBuffer(count: rows * vocab)
        linearForward(logits.pointer, normalized.pointer, model.lmHead, bias: nil, tokens: rows, pool: pool)
        let loss = crossEntropyForwardBackward(logits.pointer, targets: batch.targetTokens, vocab: vocab, weight: 1 / Float(rows))
        let dNormalized = FloatBuffer(count: rows * d), dGathered = FloatBuffer(count: rows * d)
        linearBackwardInput(dNormalized.pointer, logits.pointer, model.lmHead, tokens: rows, pool: pool)
        rmsNormBackward(dGathered.pointer, dNormalized.pointer, gathered.pointer, weight: model.finalNorm, eps: config.rmsNormEps,
                        tokens: rows, dim: d)
        for (r, row) in batch.targetRows.enumerated() { axpy(dx.pointer + row * d, 1, dGathered.pointer + r * d, d) }
        return loss
    }

    /// L_RSL's value, statistics and its gradient with respect to p, per layer ([N, E], nil
    /// without a router):
    ///   bal = alpha E sum_i pbar_i fbar_i,  ent = -lambda mean_t H(p_t), averaged over layers.
    private func routingSpecialization(_ tape: Tape, rows n: Int, losses: inout Losses) -> (RoutingStatistics, [FloatBuffer?]) {
        let e = expertCount, layers = Float(config.layerCount)
        var statistics = RoutingStatistics()
        var gradients: [FloatBuffer?] = []
        for s in tape.layers {
            guard let p = s.p else {
                gradients.append(nil)
                continue
            }
            var load = [Float](repeating: 0, count: e), mean = [Double](repeating: 0, count: e)
            var entropy: Double = 0
            for t in 0..<n {
                for j in s.selected[t] { load[j] += 1 }
                for j in 0..<e {
                    let value = p[t * e + j]
                    mean[j] += Double(value)
                    if value > 0 { entropy -= Double(value) * Double(log(value)) }
                }
            }
            load = load.map { $0 / Float(n * mixture.topK) }
            let balance = Double(alpha) * Double(e) * zip(mean, load).reduce(0) { $0 + $1.0 / Double(n) * Double($1.1) }
            losses.balance += balance / Double(layers)
            losses.entropy += -Double(lambda) * entropy / Double(n) / Double(layers)
            statistics.load.append(load)
            statistics.entropy.append(Float(entropy / Double(n)))

            let gradient = FloatBuffer(count: n * e)
            for t in 0..<n {
                for j in 0..<e {
                    let logP = log(max(p[t * e + j], .leastNormalMagnitude))
                    gradient[t * e + j] = (alpha * Float(e) * load[j] + lambda * (logP + 1)) / Float(n) / layers
                }
            }
            gradients.append(gradient)
        }
        return (statistics, gradients)
    }

    /// Backward of `project`: dInput += sum_m dOut_m W_m plus every expert's low-rank path, and the
    /// gradients of the experts' A and B and of the gates.
    ///   w = dOut B [N, r];  dg[t, e] += s w_t . z_t;  dB += dOut^T (g s z);  dz = g s w;  dA += dz^T u;  dInput += dz A
    func projectBackward(_ modules: [ProjectionModule], layer l: Int, input u: FloatBuffer, dOutputs: [FloatBuffer],
                         dInput: FloatBuffer, tape s: LayerTape, dGates: FloatBuffer, gradients: [FloatBuffer?],
                         rows n: Int) {
        for (module, dOut) in zip(modules, dOutputs) {
            linearBackwardInput(dInput.pointer, dOut.pointer, model.projection(layer: l, module: module).weight, tokens: n, pool: pool)
        }
        let e = expertCount
        for expert in 0..<e {
            for (module, dOut) in zip(modules, dOutputs) {
                guard let slot = mixture.slots[expert][l][module.rawValue],
                      let z = s.loraInputs[LayerTape.key(expert: expert, module: module)] else { continue }
                let (a, b) = (mixture.parameters[slot.a], mixture.parameters[slot.b])
                let (r, inFeatures, outFeatures) = (slot.rank, a.shape[1], b.shape[0])
                let w = FloatBuffer(count: n * r)
                linearBackwardInput(w.pointer, dOut.pointer, b.values.pointer, rows: outFeatures, cols: r, tokens: n)
                let scaled = FloatBuffer(count: n * r), dz = FloatBuffer(count: n * r)
                for t in 0..<n {
                    let g = s.gates[t * e + expert]
                    dGates[t * e + expert] += slot.scale * dot(w.pointer + t * r, z.pointer + t * r, r)
                    guard g != 0 else { continue }
                    for j in 0..<r {
                        scaled[t * r + j] = g * slot.scale * z[t * r + j]
                        dz[t * r + j] = g * slot.scale * w[t * r + j]
                    }
                }
                if let dB = gradients[slot.b] {
                    linearBackwardWeight(dB.pointer, dOut.pointer, scaled.pointer, tokens: n, inFeatures: r, outFeatures: outFeatures, pool: pool)
                }
                if let dA = gradients[slot.a] {
                    linearBackwardWeight(dA.pointer, dz.pointer, u.pointer, tokens: n, inFeatures: inFeatures, outFeatures: r, pool: pool)
                }
                linearBackwardInput(dInput.pointer, dz.pointer, a.values.pointer, rows: r, cols: inFeatures, tokens: n)
            }
        }
    }

    /// Gates -> p (by routing mode) plus L_RSL's dp -> z = (W h + W_c c + b) / T -> the router's
    /// gradients and dH1 (through h directly and through the running context mean).
    private func routerBackward(layer l: Int, tape s: LayerTape, batch: PackedBatch, routing: TrainingOptions.Routing,
                                dGates: FloatBuffer, rsl: FloatBuffer?, dH1: FloatBuffer, gradients: [FloatBuffer?]) {
        guard let router = mixture.router?[l], let p = s.p else { return }
        let n = batch.count, e = expertCount, d = config.hiddenSize
        let dp = rsl?.copy() ?? FloatBuffer(count: n * e)
        for t in 0..<n {
            switch routing {
            case .label:
                break
            case .soft:
                for j in 0..<e { dp[t * e + j] += dGates[t * e + j] }
            case .topk:
                let selected = s.selected[t]
                let total = selected.reduce(Float(0)) { $0 + p[t * e + $1] }
                let inner = selected.reduce(Float(0)) { $0 + s.gates[t * e + $1] * dGates[t * e + $1] }
                for j in selected { dp[t * e + j] += (dGates[t * e + j] - inner) / total }
            }
        }
        let dz = FloatBuffer(count: n * e)
        for t in 0..<n {
            softmaxBackward(dz.pointer + t * e, dp.pointer + t * e, p.pointer + t * e, e)
            for j in 0..<e { dz[t * e + j] /= mixture.temperature }
        }
        let weight = mixture.parameters[router.weight].values.pointer
        if let dW = gradients[router.weight] {
            linearBackwardWeight(dW.pointer, dz.pointer, s.h1.pointer, tokens: n, inFeatures: d, outFeatures: e)
        }
        if let db = gradients[router.bias] {
            for t in 0..<n { for j in 0..<e { db[j] += dz[t * e + j] } }
        }
        linearBackwardInput(dH1.pointer, dz.pointer, weight, rows: e, cols: d, tokens: n)
        if let context = router.context, let mean = s.contextMean {
            if let dWc = gradients[context] {
                linearBackwardWeight(dWc.pointer, dz.pointer, mean.pointer, tokens: n, inFeatures: d, outFeatures: e)
            }
            let dMean = FloatBuffer(count: n * d)
            linearBackwardInput(dMean.pointer, dz.pointer, mixture.parameters[context].values.pointer, rows: e, cols: d, tokens: n)
            // c_t = (1 / (pos_t + 1)) sum_{s <= t} h_s  =>  dh_s += sum_{t >= s} dc_t / (pos_t + 1), per example.
            for segment in batch.segments {
                var carry = [Float](repeating: 0, count: d)
                for t in segment.reversed() {
                    let inverse = 1 / Float(batch.positions[t] + 1)
                    for i in 0..<d {
                        carry[i] += dMean[t * d + i] * inverse
                        dH1[t * d + i] += carry[i]
                    }
                }
            }
        }
    }
}
