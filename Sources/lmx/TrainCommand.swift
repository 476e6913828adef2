import ArgumentParser
import Foundation
import Glibc
import LoRAMixer

/// `lmx train`: trains a router (regime router) or a router and LoRA experts (regime joint) on a
/// JSON Lines data set, with a live progress line, checkpoints, and a final report table.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a router, or a router and LoRA experts, on JSON Lines examples.",
        discussion: """
            Data (--data, --eval): one JSON object per line, {"text": ...} or {"prompt": ..., \
            "completion": ...} (loss on the completion only), optional "task" label. Text is encoded \
            as UTF-8 bytes (byte-level models); models with a tokenizer take {"tokens": [ids]} or \
            {"prompt_tokens": [...], "completion_tokens": [...]}.

            Regimes: router = train only the router, experts frozen (the router is new unless \
            --router FILE gives a starting point); joint = train the router and every expert's LoRA \
            A/B. --new-expert NAME adds an untrained expert (PEFT's initialisation: B = 0) with \
            --lora-rank, --lora-alpha and --target-modules. With --routing label each example trains \
            the expert named by its "task" (no router needed).

            Writes to --out: router.safetensors, experts/NAME/ (PEFT folders, joint regime), \
            checkpoint/state.safetensors and report.json, every file atomically. Checkpoints are \
            written every --checkpoint-every steps and when interrupted (Ctrl-C): rerun the same \
            command with --resume to continue the same run.
            """
    )

    @Option(help: ArgumentHelp("Hugging Face model folder (config.json + safetensors).", valueName: "dir"))
    var model: String

    @Option(name: .customLong("expert"), help: ArgumentHelp("Add the PEFT LoRA folder DIR as expert NAME (repeatable).", valueName: "name=dir"),
            transform: ExpertSpec.parse)
    var experts: [ExpertSpec] = []

    @Option(name: .customLong("new-expert"), help: ArgumentHelp("Add an untrained LoRA expert NAME (repeatable).", valueName: "name"))
    var newExperts: [String] = []

    @Option(name: .customLong("lora-rank"), help: ArgumentHelp("Rank of new experts.", valueName: "r"))
    var loraRank = 8

    @Option(name: .customLong("lora-alpha"), help: ArgumentHelp("lora_alpha of new experts (scale = alpha / r).", valueName: "a"))
    var loraAlpha = 16.0

    @Option(name: .customLong("target-modules"), help: ArgumentHelp(
        "Modules of new experts, comma-separated (default: q_proj,k_proj,v_proj,o_proj; for Mamba in_proj,x_proj,dt_proj,out_proj).",
        valueName: "names"))
    var targetModules: String?

    @Option(help: ArgumentHelp("Router file to start from (default: a new router, unless --routing label).", valueName: "file"))
    var router: String?

    @Option(name: .customLong("router-input"), help: ArgumentHelp("Input of a new router: token or context.", valueName: "kind"))
    var routerInput = "token"

    @Option(help: ArgumentHelp("Training examples (JSON Lines).", valueName: "file.jsonl"))
    var data: String

    @Option(help: ArgumentHelp("Evaluation examples (JSON Lines); per-task results at the end.", valueName: "file.jsonl"))
    var eval: String?

    @Option(help: ArgumentHelp("router or joint.", valueName: "regime"))
    var regime: String

    @Option(help: ArgumentHelp("Output folder.", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("Training routing: soft, topk or label (default: topk).", valueName: "mode"))
    var routing = "topk"

    @Option(name: .customLong("soft-steps"), help: ArgumentHelp("With topk: route softly for the first N steps.", valueName: "n"))
    var softSteps = 0

    @Option(name: .customLong("top-k"), help: ArgumentHelp("K of top-K (default: the router's, or 2).", valueName: "k"))
    var topK: Int?

    @Option(help: ArgumentHelp("Router temperature (default: the router's, or 1).", valueName: "t"))
    var temperature: Float?

    @Option(help: ArgumentHelp("L_RSL load-balance weight.", valueName: "a"))
    var alpha: Float = 0.01

    @Option(parsing: .unconditional, help: ArgumentHelp("L_RSL entropy weight (signed; < 0 rewards confident routing).", valueName: "l"))
    var lambda: Float = 0

    @Option(help: ArgumentHelp("L_preserve weight (joint regime), over --sensitive experts.", valueName: "b"))
    var beta: Float = 0

    @Option(help: ArgumentHelp("Experts L_preserve keeps near their start, comma-separated.", valueName: "names"))
    var sensitive: String?

    @Option(help: ArgumentHelp("Peak learning rate.", valueName: "lr"))
    var lr: Float = 1e-3

    @Option(name: .customLong("min-lr"), help: ArgumentHelp("Learning rate at the end of the cosine.", valueName: "lr"))
    var minLR: Float = 0

    @Option(help: ArgumentHelp("Linear warmup steps.", valueName: "n"))
    var warmup = 0

    @Option(name: .customLong("weight-decay"), help: ArgumentHelp("AdamW weight decay (matrices only).", valueName: "wd"))
    var weightDecay: Float = 0.01

    @Option(help: ArgumentHelp("Gradient-norm clip (0 = none).", valueName: "c"))
    var clip: Float = 1

    @Option(name: .customLong("batch-size"), help: ArgumentHelp("Examples per step.", valueName: "n"))
    var batchSize = 16

    @Option(help: ArgumentHelp("Passes over the data (unless --steps).", valueName: "n"))
    var epochs = 1

    @Option(help: ArgumentHelp("Total optimiser steps (overrides --epochs).", valueName: "n"))
    var steps: Int?

    @Option(help: ArgumentHelp("Seed for data order and new parameters.", valueName: "n"))
    var seed: UInt64 = 0

    @Option(name: .customLong("checkpoint-every"), help: ArgumentHelp("Checkpoint every N steps (0 = at the end and on Ctrl-C).", valueName: "n"))
    var checkpointEvery = 0

    @Flag(help: "Continue from the checkpoint in --out (same command, same data).")
    var resume = false

    @Option(help: ArgumentHelp("Worker threads (default: every core).", valueName: "n"))
    var threads: Int?

    @Option(name: .customLong("eval-max-tokens"), help: ArgumentHelp("Most tokens generated per evaluation example.", valueName: "n"))
    var evalMaxTokens = 32

    @Flag(name: .customLong("quiet"), help: "No progress line (the final report is still printed).")
    var quiet = false

    func options() throws -> TrainingOptions {
        var options = TrainingOptions()
        guard let regime = TrainingOptions.Regime(rawValue: regime) else { throw ValidationError("--regime must be router or joint, not '\(regime)'") }
        guard let routing = TrainingOptions.Routing(rawValue: routing) else { throw ValidationError("--routing must be soft, topk or label, not '\(routing)'") }
        guard let input = Router.Input(rawValue: routerInput) else { throw ValidationError("--router-input must be token or context, not '\(routerInput)'") }
        options.regime = regime
        options.routing = routing
        options.routerInput = input
        options.softSteps = softSteps
        options.topK = topK
        options.temperature = temperature
        options.alpha = alpha
        options.lambda = lambda
        options.beta = beta
        options.sensitiveExperts = sensitive.map { $0.split(separator: ",").map(String.init) } ?? []
        options.learningRate = lr
        options.minLearningRate = minLR
        options.warmupSteps = warmup
        options.weightDecay = weightDecay
        options.clipNorm = clip
        options.batchSize = batchSize
        options.epochs = epochs
        options.steps = steps
        options.seed = seed
        options.checkpointEvery = checkpointEvery
        options.threads = threads
        options.evalMaxTokens = evalMaxTokens
        do { try options.validate() } catch let error as LoRAMixerError { throw ValidationError(error.message) }
        return options
    }

    /// The modules named by --target-modules, or the family's default, checked against `config`.
    func modules(of config: ModelConfig) throws -> [ProjectionModule] {
        guard let targetModules else {
            return config.family.isStateSpace ? config.modules : [.q, .k, .v, .o]
        }
        return try targetModules.split(separator: ",").map { name in
            do { return try config.module(named: String(name), "--target-modules:") } catch let error as LoRAMixerError {
                throw ValidationError(error.message)
            }
        }
    }

    func validate() throws {
        _ = try options()
        if let targetModules, let bad = targetModules.split(separator: ",").first(where: { ProjectionModule(name: String($0)) == nil }) {
            throw ValidationError("--target-modules: '\(bad)' is not a projection (\(ProjectionModule.allCases.map(\.name).joined(separator: ", ")))")
        }
        if experts.isEmpty && newExperts.isEmpty { throw ValidationError("give the experts: --expert NAME=DIR or --new-expert NAME") }
        if !newExperts.isEmpty && regime != "joint" { throw ValidationError("--new-expert needs --regime joint (a new expert must be trained)") }
    }

    func run() throws {
        let options = try options()
        let model = try LanguageModel(directory: self.model)
        let mixer = Mixer(model: model)
        for expert in experts { try mixer.addPEFT(name: expert.name, directory: expert.directory) }
        let modules = try modules(of: model.config)
        for (index, name) in newExperts.enumerated() {
            try mixer.add(LoRAExpert(untrainedFor: model.config, name: name, rank: loraRank, alpha: loraAlpha, modules: modules,
                                     seed: options.seed &+ UInt64(index + 1)))
        }
        if let router { try mixer.loadRouter(path: router) }
        let config = model.config
        let examples = try TrainingExample.load(path: data, vocabSize: config.vocabSize, maxLength: config.maxPositions)
        let evaluation = try eval.map { try TrainingExample.load(path: $0, vocabSize: config.vocabSize, maxLength: config.maxPositions) } ?? []
        let trainer = try Trainer(mixer: mixer, options: options, examples: examples, evaluation: evaluation, output: out, resume: resume)

        Interrupt.install()
        let bar = ProgressLine(enabled: !quiet, total: trainer.totalSteps)
        if let step = trainer.report.resumedFromStep { bar.note("resuming at step \(step) of \(trainer.totalSteps)") }
        let report: TrainingReport
        do {
            report = try trainer.run { progress in
                bar.update(progress)
                return !Interrupt.requested
            }
        } catch let error as LoRAMixerError where error.kind == .cancelled {
            bar.finish()
            throw CLIError(error.message)
        }
        bar.finish()
        print(ReportTable.render(report))
    }
}

/// Ctrl-C (SIGINT) and SIGTERM ask the run to stop after the current step, checkpointed.
enum Interrupt {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    static var requested: Bool { flag != 0 }

    static func install() {
        for signal in [SIGINT, SIGTERM] {
            Glibc.signal(signal) { _ in Interrupt.flag = 1 }
        }
    }
}
