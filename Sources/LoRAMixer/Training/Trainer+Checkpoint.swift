import Crypto
import Glibc

extension Trainer {
    static let checkpointFile = "checkpoint/state.safetensors"

    /// Writes the outputs as they are now (router file, PEFT folders of trained experts,
    /// report.json), then the checkpoint (parameters, Adam moments, step), each file atomically, so
    /// a kill at any moment leaves every file whole: the previous version or the new one.
    func saveCheckpoint(to output: String) throws {
        try AtomicFile.createDirectories(SystemFiles.join(output, "checkpoint"))
        var files: [String] = []
        if let router = mixture.makeRouter(source: output) {
            try router.write(to: SystemFiles.join(output, "router.safetensors"))
            files.append("router.safetensors")
        }
        if options.regime == .joint {
            for expert in try mixture.makeExperts() {
                let folder = "experts/\(expert.name)"
                try expert.writePEFT(to: SystemFiles.join(output, folder), baseModel: model.directory, config: model.config)
                files.append(folder)
            }
        }
        files.append(Self.checkpointFile)
        files.append("report.json")
        report.files = files

        var tensors: [(name: String, shape: [Int], data: [Float])] = []
        for (index, parameter) in mixture.parameters.enumerated() {
            tensors.append(("param.\(parameter.name)", parameter.shape, parameter.values.array))
            if let m = optimizer.first[index], let v = optimizer.second[index] {
                tensors.append(("adam_m.\(parameter.name)", parameter.shape, m.array))
                tensors.append(("adam_v.\(parameter.name)", parameter.shape, v.array))
                // Update counts are small integers, exact in f32.
                tensors.append(("adam_updates.\(parameter.name)", [1], [Float(optimizer.updates[index])]))
            }
        }
        try AtomicFile.write(reportJSON().serialized() + "\n", to: SystemFiles.join(output, "report.json"))
        try SafeTensorsWriter.write(tensors, metadata: [
            "format": "loramixer.checkpoint", "version": "1", "step": String(completedSteps),
            "total_steps": String(totalSteps), "run": runFingerprint,
        ], to: SystemFiles.join(output, Self.checkpointFile))
    }

    /// Creates the output folder (failing before any training if it cannot be) and removes
    /// temporary files a killed run left in it.
    static func prepare(output: String, experts: [String]) throws {
        try AtomicFile.createDirectories(output)
        for folder in ["", "checkpoint"] + experts.map({ "experts/\($0)" }) {
            AtomicFile.removeStaleTemporaries(in: SystemFiles.join(output, folder))
        }
    }

    /// Continues from `output`'s checkpoint if there is one; it must come from the same run (same
    /// options, data, experts and router shapes), or this throws saying so.
    func restoreCheckpoint(from output: String) throws {
        let path = SystemFiles.join(output, Self.checkpointFile)
        guard SystemFiles.exists(path) else { return }
        let file = try SafeTensorsFile(path: path, mode: .copied)
        guard file.metadata["format"] == "loramixer.checkpoint", file.metadata["version"] == "1",
              let step = file.metadata["step"].flatMap(Int.init), (0...totalSteps).contains(step) else {
            throw LoRAMixerError.format("\(path): not a loramixer checkpoint of this run (format/version/step)")
        }
        guard file.metadata["run"] == runFingerprint else {
            throw LoRAMixerError.state("\(path): the checkpoint is from a different run (other options, data or experts); use a new output folder or start over without resuming")
        }
        for (index, parameter) in mixture.parameters.enumerated() {
            let names = [("param.", parameter.values), ("adam_m.", optimizer.first[index]), ("adam_v.", optimizer.second[index])]
            for (prefix, buffer) in names {
                guard let buffer else { continue }
                let view = try file.tensor(prefix + parameter.name)
                guard view.shape == parameter.shape else {
                    throw LoRAMixerError.shape("\(path): '\(prefix + parameter.name)' has shape \(view.shape), expected \(parameter.shape)")
                }
                let values = try view.floats()
                buffer.pointer.update(from: values, count: values.count)
            }
            if optimizer.first[index] != nil {
                let updates = try file.tensor("adam_updates.\(parameter.name)").floats()
                guard updates.count == 1, let count = Int(exactly: updates[0]), (0...step).contains(count) else {
                    throw LoRAMixerError.format("\(path): 'adam_updates.\(parameter.name)' is not a count in 0...\(step)")
                }
                optimizer.updates[index] = count
            }
        }
        completedSteps = step
        report.resumedFromStep = step
        report.steps = Self.loggedSteps(reportAt: SystemFiles.join(output, "report.json"), upTo: step,
                                        totalSteps: totalSteps)
    }

    /// The step records of an earlier segment of the run (report.json), so the report of a resumed
    /// run still covers every step; a missing or unreadable report just starts the log afresh.
    static func loggedSteps(reportAt path: String, upTo step: Int, totalSteps: Int) -> [TrainingProgress] {
        guard let data = try? SystemFiles.read(path),
              let steps = (try? JSONParser.parse(data, context: path))?.object?["steps"]?.array else { return [] }
        return steps.compactMap { $0.object.flatMap { TrainingProgress(json: $0, totalSteps: totalSteps) } }.filter { $0.step <= step }
    }

    /// SHA-256 over everything that decides the run's numbers: options (not threads, checkpoint
    /// interval or evaluation length), the data, and the trainable tensors' names and shapes.
    var runFingerprint: String {
        var hasher = SHA256()
        func feed(_ text: String) { hasher.update(data: Array((text + "\u{1}").utf8)) }
        let o = options
        feed("\(o.regime) \(o.routing) \(o.softSteps) \(String(describing: o.topK)) \(String(describing: o.temperature)) \(o.routerInput)")
        feed("\(o.alpha) \(o.lambda) \(o.beta) \(o.sensitiveExperts) \(o.learningRate) \(o.minLearningRate) \(o.warmupSteps)")
        feed("\(o.weightDecay) \(o.beta1) \(o.beta2) \(o.epsilon) \(o.clipNorm) \(o.batchSize) \(o.epochs) \(String(describing: o.steps)) \(o.seed)")
        for example in examples {
            feed("\(example.tokens) \(example.targets.map { $0 ? 1 : 0 }) \(example.task ?? "")")
        }
        for parameter in mixture.parameters { feed("\(parameter.name) \(parameter.shape) \(parameter.trainable)") }
        return SystemFiles.hex(hasher.finalize())
    }

    func reportJSON() -> JSONValue {
        func step(_ p: TrainingProgress) -> JSONValue {
            .object([
                "step": JSONValue(p.step), "epoch": JSONValue(p.epoch), "routing": .string(p.routing.rawValue),
                "loss": JSONValue(p.loss), "ce": JSONValue(p.crossEntropy), "balance": JSONValue(p.balance),
                "entropy_term": JSONValue(p.entropyTerm), "preserve": JSONValue(p.preserve),
                "lr": JSONValue(Double(p.learningRate)), "grad_norm": JSONValue(p.gradientNorm),
                "tokens_per_s": JSONValue(p.tokensPerSecond), "elapsed_s": JSONValue(p.elapsedSeconds),
                "expert_load": .array(p.expertLoad.map { JSONValue(Double($0)) }),
                "layer_entropy": .array(p.layerEntropy.map { JSONValue(Double($0)) }),
            ])
        }
        return .object([
            "format": .string("loramixer.training_report"),
            "regime": .string(options.regime.rawValue), "routing": .string(options.routing.rawValue),
            "experts": .array(report.experts.map(JSONValue.string)), "layers": JSONValue(report.layers),
            "total_steps": JSONValue(totalSteps), "completed_steps": JSONValue(completedSteps),
            "resumed_from_step": report.resumedFromStep.map(JSONValue.init) ?? .null,
            "files": .array(report.files.map(JSONValue.string)),
            "steps": .array(report.steps.map(step)),
            "evaluation": .array(report.evaluation.map { task in
                .object(["task": .string(task.task), "examples": JSONValue(task.examples),
                         "ce": JSONValue(task.crossEntropy), "exact_match": JSONValue(task.exactMatch)])
            }),
        ])
    }
}
