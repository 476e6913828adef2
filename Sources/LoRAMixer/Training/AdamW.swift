import Glibc

/// AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments), with
/// global-norm gradient clipping and a linear-warmup + cosine learning-rate schedule.
struct AdamW {
    let options: TrainingOptions
    let totalSteps: Int
    /// First and second moments, one per parameter tensor (nil for frozen ones).
    var first: [FloatBuffer?]
    var second: [FloatBuffer?]
    /// Updates each tensor has had: like torch, a tensor without a gradient in a step (an expert
    /// slot no token was routed to) is skipped, and its bias correction counts its own updates.
    var updates: [Int]

    init(options: TrainingOptions, parameters: [ParameterTensor], totalSteps: Int) {
        self.options = options
        self.totalSteps = totalSteps
        first = parameters.map { $0.trainable ? FloatBuffer(count: $0.count) : nil }
        second = parameters.map { $0.trainable ? FloatBuffer(count: $0.count) : nil }
        updates = Array(repeating: 0, count: parameters.count)
    }

    /// lr for step n (0-based): linear warmup to `learningRate`, then cosine down to `minLearningRate`.
    func learningRate(step n: Int) -> Float {
        let (peak, floor, warmup) = (Double(options.learningRate), Double(options.minLearningRate), options.warmupSteps)
        if n < warmup { return Float(peak * Double(n + 1) / Double(warmup)) }
        let progress = Double(n - warmup) / Double(max(1, totalSteps - warmup))
        return Float(floor + 0.5 * (peak - floor) * (1 + cos(Double.pi * min(progress, 1))))
    }

    /// The global L2 norm of the gradients.
    static func norm(_ gradients: [FloatBuffer?]) -> Double {
        var sum: Double = 0
        for gradient in gradients.compactMap({ $0 }) {
            for i in 0..<gradient.count { sum += Double(gradient[i]) * Double(gradient[i]) }
        }
        return sum.squareRoot()
    }

    /// Clips, then updates every trainable tensor in place for step n. Returns (norm before clipping, lr).
    mutating func step(_ n: Int, parameters: [ParameterTensor], gradients: [FloatBuffer?]) -> (gradientNorm: Double, learningRate: Float) {
        let norm = Self.norm(gradients)
        let clip: Float = options.clipNorm > 0 && norm > Double(options.clipNorm) ? Float(Double(options.clipNorm) / norm) : 1
        let lr = learningRate(step: n)
        let (b1, b2, eps) = (options.beta1, options.beta2, options.epsilon)
        for (index, parameter) in parameters.enumerated() {
            guard parameter.trainable, let gradient = gradients[index], let m = first[index], let v = second[index] else { continue }
            updates[index] += 1
            let k = Double(updates[index])
            let correction1 = Float(1 - pow(Double(b1), k)), correction2 = Float(1 - pow(Double(b2), k))
            let decay = parameter.decays ? lr * options.weightDecay : 0
            let p = parameter.values.pointer
            for i in 0..<parameter.count {
                let g = gradient[i] * clip
                p[i] -= decay * p[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                p[i] -= lr * (m[i] / correction1) / ((v[i] / correction2).squareRoot() + eps)
            }
        }
        return (norm, lr)
    }
}
