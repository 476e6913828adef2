import Glibc

/// The activations of a Mamba mixer over `rows` tokens: reused by every layer of an inference
/// pass, kept per layer by the trainer for its backward pass.
///   I = inner channels, N = state size, R = time-step rank
final class MixerActivations {
    /// [rows, d]: the mixer input RMSNorm(x), which the router also reads.
    let h: FloatBuffer
    /// [rows, 2I]: in_proj's output, the convolution's input (xs) then the gate (z).
    let xz: FloatBuffer
    /// [rows, I] each: xs, conv(xs) + bias, u = silu(conv), the scan output y, the gated y.
    let xs, convolved, u, scanned, gated: FloatBuffer
    /// [rows, R + 2N]: x_proj's output (before FalconMamba's norms).
    let projectedSSM: FloatBuffer
    /// [rows, R], [rows, N], [rows, N]: dt_proj's input, B and C as the scan uses them.
    let timeStep, b, c: FloatBuffer
    /// [rows, I] each: dt_proj's output and delta = softplus of it.
    let timeStepProjected, delta: FloatBuffer

    init(rows n: Int, config: StateSpaceConfig, hiddenSize d: Int) {
        let (i, s, r) = (config.innerSize, config.stateSize, config.timeStepRank)
        h = FloatBuffer(count: n * d)
        xz = FloatBuffer(count: n * 2 * i)
        (xs, convolved, u) = (FloatBuffer(count: n * i), FloatBuffer(count: n * i), FloatBuffer(count: n * i))
        (scanned, gated) = (FloatBuffer(count: n * i), FloatBuffer(count: n * i))
        projectedSSM = FloatBuffer(count: n * (r + 2 * s))
        (timeStep, b, c) = (FloatBuffer(count: n * r), FloatBuffer(count: n * s), FloatBuffer(count: n * s))
        (timeStepProjected, delta) = (FloatBuffer(count: n * i), FloatBuffer(count: n * i))
    }
}

extension LanguageModel {
    /// Mamba mixer of layer `l` from `a.h` (already normalised) into `output` ([rows, d]):
    ///   xs | z = in_proj h;  u = silu(conv(xs));  dt | B | C = x_proj u (FalconMamba: each RMS-normalised);
    ///   delta = softplus(dt_proj dt);  y = scan(u, delta, A, B, C) + D u;  output = out_proj(y * silu(z))
    /// `project(module, input, output)` computes one projection with whatever deltas apply. Each
    /// range of `sequences` is scanned as its own sequence, from `state` (the session's, then
    /// updated; one sequence) or from zeros (`state` nil).
    func mixerForward(layer l: Int, _ a: MixerActivations, output: UnsafeMutablePointer<Float>, rows n: Int,
                      sequences: [Range<Int>], state: RecurrentState?, pool: ThreadPool?,
                      project: (ProjectionModule, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) throws -> Void) rethrows {
        guard let ssm = config.stateSpace else { return }
        let layer = mixerLayers[l]
        let (i, s, r, k) = (ssm.innerSize, ssm.stateSize, ssm.timeStepRank, ssm.convKernel)
        try project(.inProj, a.h.pointer, a.xz.pointer)
        for t in 0..<n { (a.xs.pointer + t * i).update(from: a.xz.pointer + t * 2 * i, count: i) }
        for sequence in sequences {
            let start = sequence.lowerBound
            causalConvForward(a.convolved.pointer + start * i, a.xs.pointer + start * i, weight: layer.convWeight,
                              bias: layer.convBias, history: state?.convolution(layer: l), tokens: sequence.count,
                              channels: i, kernel: k, pool: pool)
        }
        a.u.pointer.update(from: a.convolved.pointer, count: n * i)
        siluInPlace(a.u.pointer, count: n * i)

        try project(.xProj, a.u.pointer, a.projectedSSM.pointer)
        let width = r + 2 * s
        for t in 0..<n {
            let row = a.projectedSSM.pointer + t * width
            (a.timeStep.pointer + t * r).update(from: row, count: r)
            (a.b.pointer + t * s).update(from: row + r, count: s)
            (a.c.pointer + t * s).update(from: row + r + s, count: s)
        }
        if let eps = ssm.mixerNormEps {
            rmsNormForward(a.timeStep.pointer, a.timeStep.pointer, weight: unitWeight, eps: eps, tokens: n, dim: r)
            rmsNormForward(a.b.pointer, a.b.pointer, weight: unitWeight, eps: eps, tokens: n, dim: s)
            rmsNormForward(a.c.pointer, a.c.pointer, weight: unitWeight, eps: eps, tokens: n, dim: s)
        }
        try project(.dtProj, a.timeStep.pointer, a.timeStepProjected.pointer)
        softplusForward(a.delta.pointer, a.timeStepProjected.pointer, count: n * i)

        for sequence in sequences {
            let start = sequence.lowerBound
            let fresh = FloatBuffer(count: state == nil ? i * s : 0)
            selectiveScanForward(a.scanned.pointer + start * i, u: a.u.pointer + start * i, delta: a.delta.pointer + start * i,
                                 a: layer.negativeA, b: a.b.pointer + start * s, c: a.c.pointer + start * s, skip: layer.skip,
                                 state: state?.ssm(layer: l) ?? fresh.pointer, states: nil, tokens: sequence.count,
                                 channels: i, stateSize: s, pool: pool)
        }
        for t in 0..<n {
            let (y, z, out) = (a.scanned.pointer + t * i, a.xz.pointer + t * 2 * i + i, a.gated.pointer + t * i)
            for j in 0..<i { out[j] = y[j] * (z[j] / (1 + exp(-z[j]))) }
        }
        try project(.outProj, a.gated.pointer, output)
    }

    /// The forward pass of a state-space model (see `forward`): per layer, x += mixer(RMSNorm(x)),
    /// with the router reading RMSNorm(x).
    func stateSpaceForward<Adapter: ProjectionAdapter>(
        tokens: [Int32], state: RecurrentState, adapter: inout Adapter, pool: ThreadPool?
    ) throws -> [Float] {
        guard let ssm = config.stateSpace else { throw LoRAMixerError.state("not a state-space model") }
        let n = tokens.count, d = config.hiddenSize
        let x = FloatBuffer(count: n * d), mixed = FloatBuffer(count: n * d)
        for (t, token) in tokens.enumerated() { embedding.loadRow(Int(token), into: x.pointer + t * d) }
        let a = MixerActivations(rows: n, config: ssm, hiddenSize: d)
        for l in 0..<config.layerCount {
            rmsNormForward(a.h.pointer, x.pointer, weight: mixerLayers[l].norm, eps: config.rmsNormEps, tokens: n, dim: d)
            try adapter.beginLayer(l, routerInput: a.h.pointer, tokens: n)
            try mixerForward(layer: l, a, output: mixed.pointer, rows: n, sequences: [0..<n], state: state, pool: pool) {
                module, input, output in
                try project([module], input: input, outputs: [output], l, &adapter, n, pool)
            }
            for j in 0..<(n * d) { x.pointer[j] += mixed.pointer[j] }
        }
        state.commit(tokens: n)
        return x.array
    }
}
