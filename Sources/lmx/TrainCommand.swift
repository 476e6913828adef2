import ArgumentParser
import Glibc
import LoRAMixer

/// `lmx train`: trains a router (regime router) or a router and LoRA experts (regime joint) on a
/// JSON Lines data set, with a live progress line, checkpoints, and a final report table.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a router, or a router and LoRA experts, on JSON Lines examples.",
        discussion: """
            Data (--data, --eval): one JSON object per line, {"text": ...} (loss on every token \
            after the first), {"prompt": ..., "completion": ...} (loss on the completion only) or \
            {"messages": [{"role": ..., "content": ...}, ...]} (rendered with the chat template, loss \
            on every assistant message with its end-of-turn text), optional "task" label. Text is \
            encoded with the model's tokenizer when its folder has tokenizer.json (text and prompt \
            with the BOS/EOS its post-processor adds, completion without; special-token text \
            recognised), as UTF-8 bytes otherwise (byte-level models; messages need a tokenizer). \
            Token ids can be given instead: {"tokens": [ids]} or {"prompt_tokens": [...], \
            "completion_tokens": [...]}. --dry-run prints the examples of --data as token ids, one \
            JSON object per line ({"source": "FILE:LINE", "task": ..., "tokens": [...], "targets": \
            [0/1 per token: 1 = in the loss]}), and trains nothing.

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

    @Option(name: .customLong("router-input"), help: ArgumentHelp("Input of a new router: token (default) or context.", valueName: "kind"))
    var routerInput: String?

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

    @Flag(name: .customLong("dry-run"), help: "Print the --data examples as token ids (JSON Lines) and exit without training.")
    var dryRun = false

    func options() throws -> TrainingOptions {
        var options = TrainingOptions()
        guard let regime = TrainingOptions.Regime(rawValue: regime) else { throw ValidationError("--regime must be router or joint, not '\(regime)'") }
        guard let routing = TrainingOptions.Routing(rawValue: routing) else { throw ValidationError("--routing must be soft, topk or label, not '\(routing)'") }
        guard let input = Router.Input(rawValue: routerInput ?? "token") else {
            throw ValidationError("--router-input must be token or context, not '\(routerInput ?? "")'")
        }
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
        guard TrainingOptions.Regime(rawValue: regime) != nil else { throw ValidationError("--regime must be router or joint, not '\(regime)'") }
        guard TrainingOptions.Routing(rawValue: routing) != nil else { throw ValidationError("--routing must be soft, topk or label, not '\(routing)'") }
        if let routerInput {
            guard Router.Input(rawValue: routerInput) != nil else { throw ValidationError("--router-input must be token or context, not '\(routerInput)'") }
            // The input of an existing router is the file's; label routing in the joint regime trains no router.
            if router != nil { throw ValidationError("--router-input applies to a new router; --router FILE keeps the input it was trained with") }
            if routing == "label" && regime == "joint" {
                throw ValidationError("--router-input applies to a new router, and --routing label --regime joint trains none")
            }
        }
        if let targetModules, let bad = targetModules.split(separator: ",").first(where: { ProjectionModule(name: String($0)) == nil }) {
            throw ValidationError("--target-modules: '\(bad)' is not a projection (\(ProjectionModule.allCases.map(\.name).joined(separator: ", ")))")
        }
        if experts.isEmpty && newExperts.isEmpty { throw ValidationError("give the experts: --expert NAME=DIR or --new-expert NAME") }
        if !newExperts.isEmpty && regime != "joint" { throw ValidationError("--new-expert needs --regime joint (a new expert must be trained)") }
        var seen = Set<String>()
        for name in experts.map(\.name) + newExperts where !seen.insert(name).inserted {
            throw ValidationError("expert '\(name)' is given twice in --expert/--new-expert")
        }
        if routing == "label" && regime == "joint" && router == nil {
            // Label routing in the joint regime trains no router: router settings would be ignored.
            for (flag, given) in [("--top-k", topK != nil), ("--temperature", temperature != nil)] where given {
                throw ValidationError("\(flag) applies to a router, and --routing label --regime joint trains none")
            }
        }
        // The rules of TrainingOptions.validate(), said with the flags as typed.
        func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if !condition { throw ValidationError(message()) }
        }
        let expertCount = experts.count + newExperts.count
        try check(loraRank >= 1, "--lora-rank \(loraRank) must be >= 1")
        try check(loraAlpha.isFinite && loraAlpha > 0, "--lora-alpha \(loraAlpha) must be finite and > 0")
        try check(softSteps >= 0, "--soft-steps \(softSteps) must be >= 0")
        try check(softSteps == 0 || routing == "topk", "--soft-steps needs --routing topk (it schedules soft -> top-K)")
        if let topK { try check((1...max(expertCount, 1)).contains(topK), "--top-k \(topK) must be in 1...\(expertCount) (the number of experts)") }
        if let temperature { try check(temperature.isFinite && temperature > 0, "--temperature \(temperature) must be finite and > 0") }
        try check(alpha.isFinite && alpha >= 0, "--alpha \(alpha) must be finite and >= 0")
        try check(lambda.isFinite, "--lambda \(lambda) must be finite")
        try check(beta.isFinite && beta >= 0, "--beta \(beta) must be finite and >= 0")
        try check(beta == 0 || regime == "joint", "--beta (L_preserve) applies to experts, which only --regime joint trains")
        try check(beta == 0 || sensitive != nil, "--beta (L_preserve) needs --sensitive NAMES, the experts it keeps near their start")
        if let sensitive {
            let names = experts.map(\.name) + newExperts
            if let unknown = sensitive.split(separator: ",").first(where: { !names.contains(String($0)) }) {
                throw ValidationError("--sensitive names unknown expert '\(unknown)' (experts: \(names.joined(separator: ", ")))")
            }
        }
        try check(lr.isFinite && lr > 0, "--lr \(lr) must be finite and > 0")
        try check(minLR.isFinite && minLR >= 0 && minLR <= lr, "--min-lr \(minLR) must be in 0...\(lr) (--lr)")
        try check(warmup >= 0, "--warmup \(warmup) must be >= 0")
        try check(weightDecay.isFinite && weightDecay >= 0, "--weight-decay \(weightDecay) must be finite and >= 0")
        try check(clip.isFinite && clip >= 0, "--clip \(clip) must be finite and >= 0")
        try check((1...65536).contains(batchSize), "--batch-size \(batchSize) must be in 1...65536")
        try check((1...100_000).contains(epochs), "--epochs \(epochs) must be in 1...100000")
        if let steps { try check((1...100_000_000).contains(steps), "--steps \(steps) must be in 1...100000000") }
        try check(checkpointEvery >= 0, "--checkpoint-every \(checkpointEvery) must be >= 0")
        if let threads { try check((1...1024).contains(threads), "--threads \(threads) must be in 1...1024") }
        try check((1...4096).contains(evalMaxTokens), "--eval-max-tokens \(evalMaxTokens) must be in 1...4096")
        _ = try options()  // anything the core still refuses
    }

    /// Fails (exit 1) unless the folders and files named exist, saying which does not.
    func checkPaths() throws {
        try InputPath.folder(model, "--model \(model)")
        for expert in experts {
            try InputPath.folder(expert.directory, "--expert \(expert.name)=\(expert.directory)")
        }
        if let router { try InputPath.file(router, "--router \(router)") }
        try InputPath.file(data, "--data \(data)")
        if let eval { try InputPath.file(eval, "--eval \(eval)") }
    }

    func run() throws {
        let options = try options()
        try checkPaths()
        let model = try LanguageModel(directory: self.model)
        if dryRun {
            for example in try TrainingExample.load(path: data, model: model) {
                let object: JSONObject = [
                    "source": example.origin.map(JSONValue.string) ?? .null,
                    "task": example.task.map(JSONValue.string) ?? .null,
                    "tokens": .array(example.tokens.map { JSONValue(Int($0)) }),
                    "targets": .array(example.targets.map { JSONValue($0 ? 1 : 0) }),
                ]
                print(JSONValue.object(object).serialized())
            }
            return
        }
        let mixer = Mixer(model: model)
        for expert in experts { try mixer.addPEFT(name: expert.name, directory: expert.directory) }
        let modules = try modules(of: model.config)
        for (index, name) in newExperts.enumerated() {
            try mixer.add(LoRAExpert(untrainedFor: model.config, name: name, rank: loraRank, alpha: loraAlpha, modules: modules,
                                     seed: options.seed &+ UInt64(index + 1)))
        }
        if let router { try mixer.loadRouter(path: router) }
        let examples = try TrainingExample.load(path: data, model: model)
        let evaluation = try eval.map { try TrainingExample.load(path: $0, model: model) } ?? []
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
