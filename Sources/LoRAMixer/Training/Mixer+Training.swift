extension Mixer {
    /// Trains this mixer's router (regime router) or router and experts (regime joint) on the JSON
    /// Lines file `dataPath` (and evaluates on `evaluationPath`), writing outputs and checkpoints to
    /// `output` when given. On success the mixer takes the trained router, and in the joint regime
    /// the trained experts in place of the old ones (same names and order); sessions created before
    /// keep what they had. On failure or cancellation the mixer is unchanged.
    public func train(options: TrainingOptions, dataPath: String, evaluationPath: String? = nil, output: String? = nil,
                      resume: Bool = false, progress: (TrainingProgress) -> Bool = { _ in true }) throws -> TrainingReport {
        let examples = try TrainingExample.load(path: dataPath, model: model)
        let evaluation = try evaluationPath.map { try TrainingExample.load(path: $0, model: model) } ?? []
        let trainer = try Trainer(mixer: self, options: options, examples: examples, evaluation: evaluation, output: output,
                                  resume: resume)
        let report = try trainer.run(progress: progress)
        try adopt(experts: options.regime == .joint ? trainer.trainedExperts() : [], router: trainer.trainedRouter())
        return report
    }
}
