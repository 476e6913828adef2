import Glibc

extension Trainer {
    /// Per task label (examples without one count as "(none)"): the mean cross-entropy on the
    /// targets, and the share of examples whose greedy generation after the prompt reproduces the
    /// targets exactly. Runs the trained router and experts through ordinary inference sessions,
    /// routed as in training: top-K -> learned, soft -> soft, label -> each example's own expert.
    func evaluate(_ examples: [TrainingExample]) throws -> [TaskEvaluation] {
        guard !examples.isEmpty else { return [] }
        let experts = try mixture.makeExperts()
        let session = try Session(model: model, experts: experts, router: mixture.makeRouter(), contextLength: nil, trace: false,
                                  threads: options.threads)
        var results: [String: (count: Int, loss: Double, targets: Int, exact: Int)] = [:]
        for example in examples {
            session.reset()
            switch options.routing {
            case .label:
                let label = example.task.flatMap { labels[$0] } ?? 0
                try session.setRouting(.fixed((0..<experts.count).map { $0 == label ? 1 : 0 }))
            case .soft: try session.setRouting(.soft)
            case .topk: try session.setRouting(.learned)
            }
            if mixture.router != nil, options.routing != .label {
                try session.setTopK(mixture.topK)
                try session.setTemperature(mixture.temperature)
            }
            let vocab = model.config.vocabSize
            let logits = try session.evaluate(example.tokens, logits: .all)
            let targetPositions = (1..<example.tokens.count).filter { example.targets[$0] }
            var rows = targetPositions.flatMap { logits[(($0 - 1) * vocab)..<($0 * vocab)] }
            let targets = targetPositions.count
            let loss = crossEntropyForwardBackward(&rows, targets: targetPositions.map { example.tokens[$0] }, vocab: vocab,
                                                   weight: 1)
            session.reset()
            let prompt = Array(example.tokens[..<example.promptLength])
            let expected = Array(example.tokens[example.promptLength...])
            var exact = false
            if !prompt.isEmpty {
                let generated = try session.generate(prompt: prompt, options: .init(maxTokens: min(expected.count, options.evalMaxTokens)))
                exact = generated == Array(expected.prefix(options.evalMaxTokens))
            }
            let task = example.task ?? "(none)"
            var entry = results[task] ?? (0, 0, 0, 0)
            entry.count += 1
            entry.loss += loss
            entry.targets += targets
            entry.exact += exact ? 1 : 0
            results[task] = entry
        }
        return results.keys.sorted().map { task in
            let entry = results[task]!
            return TaskEvaluation(task: task, examples: entry.count, crossEntropy: entry.loss / Double(max(entry.targets, 1)),
                                  exactMatch: Double(entry.exact) / Double(entry.count))
        }
    }
}
