import Glibc

/// Trains a mixer's router, or its router and experts together, on examples (docs/ARCHITECTURE.md#method).
/// Writes the router file, PEFT folders for trained experts, checkpoints and `report.json` to the
/// output folder, every file atomically.
public final class Trainer {
    public let options: TrainingOptions
    let model: LanguageModel
    let examples: [TrainingExample]
    let evaluationExamples: [TrainingExample]
    let output: String?
    private(set) var mixture: TrainableMixture
    private let pool: ThreadPool
    var optimizer: AdamW
    let labels: [String: Int]
    /// Starting values of the sensitive experts' tensors (L_preserve).
    private let reference: [Int: FloatBuffer]
    public let totalSteps: Int
    public internal(set) var completedSteps = 0
    public internal(set) var report = TrainingReport()

    /// Checks everything up front: options, experts, labels, and an existing checkpoint when resuming.
    public init(mixer: Mixer, options: TrainingOptions, examples: [TrainingExample], evaluation: [TrainingExample] = [],
                output: String?, resume: Bool = false) throws {
        try options.validate()
        if output == nil, resume || options.checkpointEvery > 0 {
            throw LoRAMixerError.invalidArgument("\(resume ? "resume" : "checkpoint_every") needs an output folder for the checkpoint")
        }
        guard !examples.isEmpty else { throw LoRAMixerError.invalidArgument("no training examples") }
        let config = mixer.model.config
        for (index, example) in (examples + evaluation).enumerated() {
            guard example.tokens.count >= 2, example.tokens.count == example.targets.count,
                  example.tokens.count <= config.maxPositions,
                  example.tokens.allSatisfy({ (0..<Int32(config.vocabSize)).contains($0) }) else {
                throw LoRAMixerError.invalidArgument("\(example.origin ?? "example \(index)"): needs 2...\(config.maxPositions) token ids in 0..<\(config.vocabSize), one target flag each")
            }
        }
        self.options = options
        model = mixer.model
        self.examples = examples
        evaluationExamples = evaluation
        self.output = output
        mixture = try TrainableMixture(config: config, experts: mixer.experts, router: mixer.router, options: options)
        let names = mixture.expertNames
        let labels = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        if options.routing == .label {
            for (index, example) in (examples + evaluation).enumerated() where example.task.flatMap({ labels[$0] }) == nil {
                throw LoRAMixerError.invalidArgument("\(example.origin ?? "example \(index)"): label routing needs a \"task\" naming an expert (experts: \(names)), got \(example.task.map { "'\($0)'" } ?? "none")")
            }
        }
        self.labels = labels
        totalSteps = options.steps ?? options.epochs * ((examples.count + options.batchSize - 1) / options.batchSize)
        pool = ThreadPool(threads: options.threads ?? SystemFiles.processorCount)
        optimizer = AdamW(options: options, parameters: mixture.parameters, totalSteps: totalSteps)
        let sensitive = Set(options.sensitiveExperts.map { "experts.\($0)." })
        reference = Dictionary(uniqueKeysWithValues: mixture.parameters.enumerated().compactMap { index, parameter in
            sensitive.contains(where: parameter.name.hasPrefix) ? (index, parameter.values.copy()) : nil
        })
        report.experts = mixture.expertNames
        report.layers = config.layerCount
        if let output {
            try Self.prepare(output: output, experts: mixture.expertNames)
            if resume { try restoreCheckpoint(from: output) }
        }
    }

    var graph: TrainingGraph {
        TrainingGraph(model: model, mixture: mixture, alpha: options.alpha, lambda: options.lambda, pool: pool)
    }

    /// Routing of step n: soft during the soft phase of a soft -> top-K schedule.
    func routing(step n: Int) -> TrainingOptions.Routing {
        options.routing == .topk && n < options.softSteps ? .soft : options.routing
    }

    var batchesPerEpoch: Int { (examples.count + options.batchSize - 1) / options.batchSize }

    func epoch(step n: Int) -> Int { n / batchesPerEpoch }

    /// The examples of step n: epoch n / batchesPerEpoch in a seeded order, its (n % batchesPerEpoch)-th batch.
    func batch(step n: Int) -> (examples: [TrainingExample], epoch: Int) {
        let epoch = self.epoch(step: n), index = n % batchesPerEpoch
        var generator = SplitMix64(seed: options.seed &+ UInt64(epoch) &* 0x9E37_79B9)
        let order = generator.permutation(examples.count)
        let rows = order[(index * options.batchSize)..<min(examples.count, (index + 1) * options.batchSize)]
        return (rows.map { examples[$0] }, epoch)
    }

    func pack(_ batch: [TrainingExample]) -> PackedBatch {
        PackedBatch(batch) { example in example.task.flatMap { labels[$0] } ?? -1 }
    }

    /// Loss terms, statistics and gradients of one batch at the current parameters (no update).
    func gradients(for batch: [TrainingExample], routing: TrainingOptions.Routing)
        throws -> (TrainingGraph.Losses, TrainingGraph.RoutingStatistics, [FloatBuffer?]) {
        let packed = pack(batch)
        let graph = self.graph
        let tape = try graph.forward(packed, routingNow: routing)
        var gradients = mixture.parameters.map { $0.trainable ? FloatBuffer(count: $0.count) : nil }
        // A slot no token was routed to is not in this step's graph: like a torch parameter whose
        // .grad is None, AdamW leaves it alone (no decay, no momentum step), unless L_preserve holds it.
        for (e, layers) in mixture.slots.enumerated() {
            for (l, modules) in layers.enumerated() {
                for (m, slot) in modules.enumerated() {
                    guard let slot, let module = ProjectionModule(rawValue: m),
                          tape.layers[l].loraInputs[LayerTape.key(expert: e, module: module)] == nil else { continue }
                    for index in [slot.a, slot.b] where reference[index] == nil { gradients[index] = nil }
                }
            }
        }
        let (losses, statistics) = graph.backward(packed, tape: tape, routingNow: routing, gradients: gradients,
                                                  preserve: (options.beta, reference))
        return (losses, statistics, gradients)
    }

    /// One optimiser step on step n's batch.
    @discardableResult
    func step(_ n: Int) throws -> (TrainingGraph.Losses, TrainingGraph.RoutingStatistics, Double, Float, Int) {
        let (batch, _) = self.batch(step: n)
        let (losses, statistics, gradients) = try self.gradients(for: batch, routing: routing(step: n))
        guard losses.total.isFinite else {
            throw LoRAMixerError.state("the loss became \(losses.total) at step \(n + 1); lower the learning rate")
        }
        let (norm, lr) = optimizer.step(n, parameters: mixture.parameters, gradients: gradients)
        return (losses, statistics, norm, lr, batch.reduce(0) { $0 + $1.tokens.count })
    }

    /// Trains to the end (or until `progress` returns false: then the run is checkpointed and
    /// `.cancelled` is thrown), writes the outputs and evaluates. Resumable: a later Trainer with
    /// `resume: true` on the same output folder continues from the last checkpoint.
    public func run(progress: (TrainingProgress) -> Bool = { _ in true }) throws -> TrainingReport {
        let clock = ContinuousClock()
        let start = clock.now
        var tokens = 0
        while completedSteps < totalSteps {
            let n = completedSteps
            let (losses, statistics, norm, lr, batchTokens) = try step(n)
            completedSteps += 1
            tokens += batchTokens
            let elapsed = SystemFiles.seconds(start.duration(to: clock.now))
            let done = completedSteps - (report.resumedFromStep ?? 0)
            let layers = max(statistics.load.count, 1)
            let load = (0..<mixture.expertNames.count).map { j in statistics.load.reduce(Float(0)) { $0 + $1[j] } / Float(layers) }
            let record = TrainingProgress(
                step: completedSteps, totalSteps: totalSteps, epoch: epoch(step: n), loss: losses.total,
                crossEntropy: losses.crossEntropy, balance: losses.balance, entropyTerm: losses.entropy,
                preserve: losses.preserve, learningRate: lr, gradientNorm: norm,
                tokensPerSecond: elapsed > 0 ? Double(tokens) / elapsed : 0, elapsedSeconds: elapsed,
                etaSeconds: elapsed / Double(done) * Double(totalSteps - completedSteps),
                expertLoad: statistics.load.isEmpty ? [] : load, layerEntropy: statistics.entropy, routing: routing(step: n))
            report.steps.append(record)
            let goOn = progress(record)
            if let output, completedSteps < totalSteps, options.checkpointEvery > 0, completedSteps % options.checkpointEvery == 0 {
                try saveCheckpoint(to: output)
            }
            if !goOn && completedSteps < totalSteps {
                var saved = ""
                if let output {
                    try saveCheckpoint(to: output)
                    saved = "; checkpoint saved in \(output) (resume to continue)"
                }
                throw LoRAMixerError(.cancelled, "training cancelled after step \(completedSteps) of \(totalSteps)\(saved)")
            }
        }
        report.evaluation = try evaluate(evaluationExamples)
        if let output { try saveCheckpoint(to: output) }
        return report
    }

    /// The trained experts and router, as inference objects.
    public func trainedExperts() throws -> [LoRAExpert] { try mixture.makeExperts() }
    public func trainedRouter() -> Router? { mixture.makeRouter() }
}
