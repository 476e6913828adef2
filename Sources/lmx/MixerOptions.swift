import ArgumentParser
import LoRAMixer

/// The model, expert and routing flags shared by `lmx logits` and `lmx run`, and the one place
/// that turns them into a session.
struct MixerOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Hugging Face model folder (config.json + safetensors).", valueName: "dir"))
    var model: String

    @Option(name: .customLong("expert"),
            help: ArgumentHelp("Add the PEFT LoRA folder DIR as expert NAME (repeatable; order = expert order).",
                               valueName: "name=dir"),
            transform: ExpertSpec.parse)
    var experts: [ExpertSpec] = []

    @Option(help: ArgumentHelp("Router file (loramixer.router safetensors); alone it selects learned top-K routing.",
                               valueName: "file"))
    var router: String?

    @Option(name: .customLong("fixed"), parsing: .unconditional,
            help: ArgumentHelp("Fixed gates for every token, by expert name, e.g. e0=0.5,e2=1 (used as given, unnamed experts get 0).",
                               valueName: "name=w,..."),
            transform: FixedWeights.parse)
    var fixed: FixedWeights?

    @Flag(help: "Uniform routing: every expert with gate 1/E.")
    var uniform = false

    @Flag(help: "Soft routing: every expert with its router probability (needs --router).")
    var soft = false

    @Option(name: .customLong("top-k"), help: ArgumentHelp("Router top-K for learned routing (default: the router file's).", valueName: "k"))
    var topK: Int?

    @Option(help: ArgumentHelp("Router softmax temperature for learned/soft routing (default: the router file's).", valueName: "t"))
    var temperature: Float?

    @Flag(name: .customLong("no-mmap"), help: "Read the model weights into memory instead of mapping the files.")
    var noMmap = false

    static let routingDiscussion = """
        Routing: --router FILE alone = learned (top-K of the router's softmax, gates renormalised); \
        --soft with --router = all experts gated by the router's probabilities; --fixed = the given \
        weights at every token; --uniform = 1/E for every expert. With no expert the base model runs; \
        a single --expert with no routing flag is applied at full weight (like PEFT); several experts \
        need a routing choice. --fixed and --uniform use no router: giving --router with them is a \
        usage error. --top-k and --temperature change the router, not sampling.
        """

    func validate() throws {
        var seen = Set<String>()
        for expert in experts where !seen.insert(expert.name).inserted {
            throw ValidationError("expert '\(expert.name)' is given twice in --expert")
        }
        let chosen = [fixed != nil ? "--fixed" : nil, uniform ? "--uniform" : nil, soft ? "--soft" : nil].compactMap { $0 }
        if chosen.count > 1 {
            throw ValidationError("choose one routing mode: \(chosen.joined(separator: " and ")) were both given")
        }
        if soft && router == nil { throw ValidationError("--soft needs --router FILE") }
        if let mode = chosen.first, mode != "--soft", router != nil {
            throw ValidationError("\(mode) does not use a router: give --router FILE or \(mode), not both")
        }
        if router != nil && experts.isEmpty {
            throw ValidationError("--router needs the experts it routes to: add them with --expert NAME=DIR")
        }
        if let mode = chosen.first, mode != "--soft", experts.isEmpty {
            throw ValidationError("\(mode) needs at least one --expert NAME=DIR")
        }
        if let fixed {
            let names = experts.map(\.name)
            if let unknown = fixed.entries.first(where: { !names.contains($0.name) }) {
                throw ValidationError("--fixed names unknown expert '\(unknown.name)' (experts: \(names.joined(separator: ", ")))")
            }
        }
        if chosen.isEmpty && router == nil && experts.count > 1 {
            throw ValidationError("\(experts.count) experts but no routing: add --router FILE, --fixed NAME=W,... or --uniform")
        }
        let learned = router != nil && chosen.isEmpty
        if let topK {
            guard learned else {
                throw ValidationError("--top-k applies to learned routing only (--router without --soft, --fixed or --uniform)")
            }
            guard (1...experts.count).contains(topK) else {
                throw ValidationError("--top-k \(topK) must be in 1...\(experts.count) (the number of --expert)")
            }
        }
        if let temperature {
            guard learned || soft else {
                throw ValidationError("--temperature applies to learned or soft routing only (it needs --router)")
            }
            guard temperature.isFinite && temperature > 0 else {
                throw ValidationError("--temperature \(temperature) must be finite and > 0")
            }
        }
    }

    /// Fails (exit 1) unless the folders and files named exist, saying which does not; run before
    /// anything is loaded.
    func checkPaths() throws {
        try InputPath.folder(model, "--model \(model)")
        for expert in experts {
            try InputPath.folder(expert.directory, "--expert \(expert.name)=\(expert.directory)")
        }
        if let router { try InputPath.file(router, "--router \(router)") }
    }

    /// The routing the flags select (see `routingDiscussion`).
    var routing: RoutingMode {
        if let fixed {
            return .fixed(experts.map { expert in fixed.entries.first { $0.name == expert.name }?.weight ?? 0 })
        }
        if uniform { return .uniform }
        if soft { return .soft }
        if router != nil { return .learned }
        return experts.count == 1 ? .fixed([1]) : .none
    }

    /// Loads the model, the experts in order and the router, and opens a session with the routing set.
    func makeSession(trace: Bool) throws -> Session {
        try checkPaths()
        let mixer = Mixer(model: try LanguageModel(directory: model, mode: noMmap ? .copied : .mapped))
        for expert in experts {
            try mixer.addPEFT(name: expert.name, directory: expert.directory)
        }
        if let router { try mixer.loadRouter(path: router) }
        let session = try mixer.makeSession(trace: trace)
        try session.setRouting(routing)
        try session.setTopK(topK)
        try session.setTemperature(temperature)
        return session
    }

    /// Fails with a usage error (exit 64) unless every id is below the model's vocabulary size
    /// and, when `context` is set, the list fits in the model's context; `flag` names the flag.
    static func checkTokens(_ ids: [Int32], of session: Session, _ flag: String, context: Bool = false) throws {
        let vocab = session.model.config.vocabSize
        if let bad = ids.firstIndex(where: { Int($0) >= vocab }) {
            throw UsageError("\(flag): token id \(ids[bad]) at position \(bad) (0-based) is out of range (vocab size \(vocab))")
        }
        let limit = session.contextLength
        if context && ids.count > limit {
            throw UsageError("\(flag): \(ids.count) tokens do not fit in the model's context of \(limit) (max_position_embeddings)")
        }
    }
}
