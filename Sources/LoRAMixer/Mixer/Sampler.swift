import Foundation

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
    private var state: UInt64

    init(options: SamplingOptions) {
        self.options = options
        state = options.seed
    }

    /// SplitMix64: small, fast, and the same on every platform.
    private mutating func nextUniform() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) / Float(1 << 24)
    }

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
