import Glibc

extension TrainingGraph {
    /// Backward of a Mamba block x_out = x_in + mixer(h), from d x_out (`dx`) to d h, the gradient
    /// at the mixer input (which the router also reads); the caller adds the router's share and
    /// takes it through the block norm. Each sequence's scan states are recomputed here, one layer
    /// at a time, instead of being kept for every layer.
    func mixerBackward(_ l: Int, _ a: MixerActivations, batch: PackedBatch, dx: FloatBuffer, tape s: LayerTape,
                       dGates: FloatBuffer, gradients: [FloatBuffer?]) -> FloatBuffer {
        guard let ssm = config.stateSpace else { return FloatBuffer(count: 0) }
        let n = batch.count, d = config.hiddenSize, layer = model.mixerLayers[l]
        let (i, ns, r) = (ssm.innerSize, ssm.stateSize, ssm.timeStepRank)
        func backward(_ module: ProjectionModule, input: FloatBuffer, dOutput: FloatBuffer, dInput: FloatBuffer) {
            projectBackward([module], layer: l, input: input, dOutputs: [dOutput], dInput: dInput, tape: s, dGates: dGates,
                            gradients: gradients, rows: n)
        }

        // output = out_proj(y * silu(z))
        let dGated = FloatBuffer(count: n * i)
        backward(.outProj, input: a.gated, dOutput: dx, dInput: dGated)
        let dxz = FloatBuffer(count: n * 2 * i), dScanned = FloatBuffer(count: n * i)
        for t in 0..<n {
            for j in 0..<i {
                let z = a.xz[t * 2 * i + i + j], g = dGated[t * i + j]
                dScanned[t * i + j] = g * z / (1 + exp(-z))
                dxz[t * 2 * i + i + j] = g * a.scanned[t * i + j] * siluDerivative(z)
            }
        }

        // y = scan(u, delta, A, B, C) + D u, from a zero state per sequence
        let du = FloatBuffer(count: n * i), dDelta = FloatBuffer(count: n * i)
        let db = FloatBuffer(count: n * ns), dc = FloatBuffer(count: n * ns)
        for sequence in batch.segments {
            let (start, length) = (sequence.lowerBound, sequence.count)
            let states = FloatBuffer(count: length * i * ns), state = FloatBuffer(count: i * ns), y = FloatBuffer(count: length * i)
            let (u, delta, b, c) = (a.u.pointer + start * i, a.delta.pointer + start * i, a.b.pointer + start * ns, a.c.pointer + start * ns)
            selectiveScanForward(y.pointer, u: u, delta: delta, a: layer.negativeA, b: b, c: c, skip: layer.skip, state: state.pointer,
                                 states: states.pointer, tokens: length, channels: i, stateSize: ns, pool: pool)
            selectiveScanBackward(du: du.pointer + start * i, dDelta: dDelta.pointer + start * i, db: db.pointer + start * ns,
                                  dc: dc.pointer + start * ns, dScanned.pointer + start * i, u: u, delta: delta, a: layer.negativeA,
                                  b: b, c: c, skip: layer.skip, states: states.pointer, tokens: length, channels: i, stateSize: ns)
        }

        // delta = softplus(dt_proj(dt))
        for j in 0..<(n * i) { dDelta[j] *= softplusDerivative(a.timeStepProjected[j]) }
        let dTimeStep = FloatBuffer(count: n * r)
        backward(.dtProj, input: a.timeStep, dOutput: dDelta, dInput: dTimeStep)

        // dt | B | C = x_proj(u), each RMS-normalised (no weight) in FalconMamba
        let width = r + 2 * ns
        let dProjected = FloatBuffer(count: n * width)
        for (offset, dim, gradient) in [(0, r, dTimeStep), (r, ns, db), (r + ns, ns, dc)] {
            var dRaw = gradient
            if let eps = ssm.mixerNormEps {
                let raw = FloatBuffer(count: n * dim)
                for t in 0..<n { (raw.pointer + t * dim).update(from: a.projectedSSM.pointer + t * width + offset, count: dim) }
                dRaw = FloatBuffer(count: n * dim)
                rmsNormBackward(dRaw.pointer, gradient.pointer, raw.pointer, weight: model.unitWeight, eps: eps, tokens: n, dim: dim)
            }
            for t in 0..<n { (dProjected.pointer + t * width + offset).update(from: dRaw.pointer + t * dim, count: dim) }
        }
        backward(.xProj, input: a.u, dOutput: dProjected, dInput: du)

        // u = silu(conv(xs) + bias), per sequence from zero history
        for j in 0..<(n * i) { du[j] *= siluDerivative(a.convolved[j]) }
        let dxs = FloatBuffer(count: n * i)
        for sequence in batch.segments {
            let start = sequence.lowerBound
            causalConvBackward(dxs.pointer + start * i, du.pointer + start * i, weight: layer.convWeight, tokens: sequence.count,
                               channels: i, kernel: ssm.convKernel)
        }
        for t in 0..<n { (dxz.pointer + t * 2 * i).update(from: dxs.pointer + t * i, count: i) }

        // xs | z = in_proj(h)
        let dH = FloatBuffer(count: n * d)
        backward(.inProj, input: s.h1, dOutput: dxz, dInput: dH)
        return dH
    }
}
