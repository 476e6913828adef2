/// Everything that decides a training run (docs/ARCHITECTURE.md#training). The same
/// options, data and seed give the same result, run after run, on the same machine.
public struct TrainingOptions: Sendable, Equatable {
    /// What is trained; the base model never is.
    public enum Regime: String, Sendable, CaseIterable {
        /// Only the router; the experts are frozen (LoRA-Mixer regime ii).
        case router
        /// The router and every expert's LoRA A/B together (regime i).
        case joint
    }

    /// How gates are formed while training.
    public enum Routing: String, Sendable, CaseIterable {
        /// Every expert, g = p.
        case soft
        /// The renormalised top-K of p; gradients flow through the selected probabilities.
        case topk
        /// One-hot by the example's task label (an expert of that name): each expert learns its own data.
        case label
    }

    public var regime: Regime = .router
    public var routing: Routing = .topk
    /// With `.topk`: the first `softSteps` steps route softly, then top-K (the soft -> top-K schedule).
    public var softSteps = 0
    /// K of top-K routing and of the load statistics; nil = the router's top_k (2 for a new router).
    public var topK: Int?
    /// Router softmax temperature; nil = the router's (1 for a new router).
    public var temperature: Float?
    /// Input of a new router (a router already in the mixer keeps its own).
    public var routerInput: Router.Input = .token

    /// Weight of the load-balance term of L_RSL.
    public var alpha: Float = 0.01
    /// Weight of the entropy term of L_RSL (signed: L_RSL has -lambda * mean entropy).
    public var lambda: Float = 0
    /// Weight of L_preserve (joint regime) over the experts named in `sensitiveExperts`.
    public var beta: Float = 0
    public var sensitiveExperts: [String] = []

    public var learningRate: Float = 1e-3
    public var minLearningRate: Float = 0
    public var warmupSteps = 0
    public var weightDecay: Float = 0.01
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// Global gradient-norm clip; 0 = none.
    public var clipNorm: Float = 1

    /// Examples per optimiser step.
    public var batchSize = 16
    /// Passes over the data, unless `steps` is set.
    public var epochs = 1
    /// Total optimiser steps (overrides `epochs`); nil = epochs x batches per epoch.
    public var steps: Int?
    /// Seeds the data order and the initial values of new parameters.
    public var seed: UInt64 = 0
    /// Save a checkpoint every N steps (0 = only when the run ends or is cancelled).
    public var checkpointEvery = 0
    /// Worker threads; nil = every core.
    public var threads: Int?
    /// Most tokens generated per example when evaluating exact match.
    public var evalMaxTokens = 32

    public init() {}

    /// Throws, naming the field, for values that cannot train.
    public func validate() throws {
        func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if !condition { throw LoRAMixerError.invalidArgument(message()) }
        }
        try check(softSteps >= 0, "soft_steps \(softSteps) must be >= 0")
        try check(softSteps == 0 || routing == .topk, "soft_steps needs routing 'topk' (it schedules soft -> top-K)")
        if let topK { try check(topK >= 1, "top_k \(topK) must be >= 1") }
        if let temperature { try check(temperature.isFinite && temperature > 0, "temperature \(temperature) must be > 0") }
        for (name, value) in [("alpha", alpha), ("lambda", lambda), ("beta", beta)] {
            try check(value.isFinite, "\(name) \(value) must be finite")
        }
        try check(alpha >= 0, "alpha \(alpha) must be >= 0")
        try check(beta >= 0, "beta \(beta) must be >= 0")
        try check(beta == 0 || regime == .joint, "beta (L_preserve) applies to experts, which only the joint regime trains")
        try check(beta == 0 || !sensitiveExperts.isEmpty, "beta (L_preserve) needs the sensitive experts it keeps near their start")
        try check(learningRate.isFinite && learningRate > 0, "learning rate \(learningRate) must be > 0")
        try check(minLearningRate.isFinite && (0...learningRate).contains(minLearningRate),
                  "min learning rate \(minLearningRate) must be in 0...\(learningRate)")
        try check(warmupSteps >= 0, "warmup steps \(warmupSteps) must be >= 0")
        try check(weightDecay.isFinite && weightDecay >= 0, "weight decay \(weightDecay) must be >= 0")
        try check((0..<1).contains(beta1) && (0..<1).contains(beta2), "Adam betas (\(beta1), \(beta2)) must be in [0, 1)")
        try check(epsilon.isFinite && epsilon > 0, "Adam epsilon \(epsilon) must be > 0")
        try check(clipNorm.isFinite && clipNorm >= 0, "clip norm \(clipNorm) must be >= 0")
        try check((1...65536).contains(batchSize), "batch size \(batchSize) must be in 1...65536")
        try check((1...100_000).contains(epochs), "epochs \(epochs) must be in 1...100000")
        if let steps { try check((1...100_000_000).contains(steps), "steps \(steps) must be in 1...100000000") }
        try check(checkpointEvery >= 0, "checkpoint_every \(checkpointEvery) must be >= 0")
        if let threads { try check((1...1024).contains(threads), "threads \(threads) must be in 1...1024") }
        try check((1...4096).contains(evalMaxTokens), "eval max tokens \(evalMaxTokens) must be in 1...4096")
    }
}
