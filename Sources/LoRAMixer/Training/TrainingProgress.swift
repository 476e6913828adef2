/// What a training run reports after every step (and the progress callback receives).
public struct TrainingProgress: Sendable {
    /// Steps done (1-based after the first step) of `totalSteps`.
    public var step: Int
    public var totalSteps: Int
    public var epoch: Int
    /// Loss terms of this step's batch.
    public var loss: Double
    public var crossEntropy: Double
    public var balance: Double
    public var entropyTerm: Double
    public var preserve: Double
    public var learningRate: Float
    /// Global gradient norm before clipping.
    public var gradientNorm: Double
    /// Tokens (batch rows) processed per second, over the run so far.
    public var tokensPerSecond: Double
    public var elapsedSeconds: Double
    public var etaSeconds: Double
    /// Per expert, its share of this step's top-K assignments, averaged over layers (sums to 1).
    public var expertLoad: [Float]
    /// Per layer, the mean token entropy of the router's p (nats).
    public var layerEntropy: [Float]
    /// Routing used for this step (`soft` during a soft -> top-K schedule's soft phase).
    public var routing: TrainingOptions.Routing
}

extension TrainingProgress {
    /// A step record read back from report.json (its ETA is not kept).
    init?(json: JSONObject, totalSteps: Int) {
        func number(_ key: String) -> Double? { json[key]?.double }
        func floats(_ key: String) -> [Float]? { json[key]?.array?.map { Float($0.double ?? .nan) } }
        guard let step = json["step"]?.int, let epoch = json["epoch"]?.int,
              let routing = json["routing"]?.string.flatMap(TrainingOptions.Routing.init(rawValue:)),
              let loss = number("loss"), let ce = number("ce"), let balance = number("balance"),
              let entropy = number("entropy_term"), let preserve = number("preserve"), let lr = number("lr"),
              let norm = number("grad_norm"), let speed = number("tokens_per_s"),
              let load = floats("expert_load"), let entropies = floats("layer_entropy") else { return nil }
        self.init(step: step, totalSteps: totalSteps, epoch: epoch, loss: loss, crossEntropy: ce, balance: balance,
                  entropyTerm: entropy, preserve: preserve, learningRate: Float(lr), gradientNorm: norm,
                  tokensPerSecond: speed, elapsedSeconds: number("elapsed_s") ?? 0, etaSeconds: 0, expertLoad: load,
                  layerEntropy: entropies, routing: routing)
    }
}

/// An evaluation of one task label: mean cross-entropy on its targets and exact match of greedy
/// generation of the completion.
public struct TaskEvaluation: Sendable, Equatable {
    public var task: String
    public var examples: Int
    public var crossEntropy: Double
    public var exactMatch: Double
}

/// What a finished run returns and writes to `report.json`.
public struct TrainingReport: Sendable {
    public var steps: [TrainingProgress] = []
    public var evaluation: [TaskEvaluation] = []
    public var experts: [String] = []
    public var layers = 0
    /// Files written, relative to the output folder.
    public var files: [String] = []
    public var resumedFromStep: Int?
}
