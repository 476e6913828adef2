import Glibc

/// Next-token choice: greedy, or temperature sampling restricted by top-k and top-p, from a
/// seeded generator so that equal seeds give equal samples.
public struct SamplingOptions: Sendable, Equatable {
    /// 0 = greedy.
    public var temperature: Float = 0
    /// 0 = no limit.
    public var topK: Int = 0
    /// 1 = no limit.
    public var topP: Float = 1
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    func validate() throws {
        guard temperature.isFinite, temperature >= 0 else {
            throw LoRAMixerError.invalidArgument("temperature \(temperature) must be finite and >= 0 (0 = greedy)")
        }
        guard topP.isFinite, topP > 0, topP <= 1 else {
            throw LoRAMixerError.invalidArgument("top_p \(topP) must be in (0, 1]")
        }
        guard topK >= 0 else { throw LoRAMixerError.invalidArgument("top_k \(topK) must be >= 0") }
    }
}

struct Sampler {
    let options: SamplingOptions
    private var generator: SplitMix64

    init(options: SamplingOptions) {
        self.options = options
        generator = SplitMix64(seed: options.seed)
    }

    private mutating func nextUniform() -> Float { generator.nextUniform() }

    mutating func sample(_ logits: [Float]) -> Int32 {
        guard options.temperature > 0 else { return Int32(argmax(logits)) }
        var candidates = logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
        if options.topK > 0 { candidates = Array(candidates.prefix(options.topK)) }
        let maximum = logits[candidates[0]]
        var weights = candidates.map { exp((logits[$0] - maximum) / options.temperature) }
        let total = weights.reduce(0, +)
        weights = weights.map { $0 / total }
        if options.topP < 1 {
            var cumulative: Float = 0
            var keep = 0
            while keep < weights.count {
                cumulative += weights[keep]
                keep += 1
                if cumulative >= options.topP { break }
            }
            candidates = Array(candidates.prefix(keep))
            weights = Array(weights.prefix(keep))
        }
        let threshold = nextUniform() * weights.reduce(0, +)
        var cumulative: Float = 0
        for (candidate, weight) in zip(candidates, weights) {
            cumulative += weight
            if threshold < cumulative { return Int32(candidate) }
        }
        return Int32(candidates[candidates.count - 1])
    }

    private func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }
}
