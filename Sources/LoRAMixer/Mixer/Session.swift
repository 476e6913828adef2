import Glibc

/// One sequence being evaluated over a snapshot of a mixer: its KV cache or recurrent state, routing settings,
/// the router's running context and the routing trace. Use from one thread at a time.
public final class Session {
    public let model: LanguageModel
    public let experts: [any Expert]
    public let router: Router?
    public let contextLength: Int
    /// Threads an evaluation may use.
    public let threads: Int
    public private(set) var routing: RoutingMode
    /// The weights of the last `.fixed` mode set, kept when the mode changes.
    public private(set) var fixedWeights: [Float]?
    /// nil = the router file's top_k.
    public private(set) var topKOverride: Int?
    /// nil = the router file's temperature.
    public private(set) var temperatureOverride: Float?
    public private(set) var trace: RoutingTrace?
    /// Asked before every layer of every evaluation (prefill, decode, generate); returning true
    /// cancels the call (LoRAMixerError.cancelled) and leaves the session as it was before it.
    public var abortCheck: (() -> Bool)?
    private let state: SequenceState
    /// Worker threads for this session's evaluations, started on first use.
    private lazy var pool = ThreadPool(threads: threads)
    private var contextSums: [[Float]]
    /// The last processed position's hidden state, so generation can continue from it; its
    /// logits are computed only when asked for.
    private var lastHidden: [Float]?

    init(model: LanguageModel, experts: [any Expert], router: Router?, contextLength: Int?, trace: Bool, threads: Int?) throws {
        let config = model.config
        let length = contextLength ?? config.maxPositions
        guard (1...config.maxPositions).contains(length) else {
            throw LoRAMixerError.invalidArgument("n_ctx \(length) must be in 1...\(config.maxPositions) (max_position_embeddings)")
        }
        let cores = SystemFiles.processorCount
        if let threads, !(1...1024).contains(threads) {
            throw LoRAMixerError.invalidArgument("n_threads \(threads) must be in 1...1024 (0 = the \(cores) cores available)")
        }
        self.threads = threads ?? cores
        self.model = model
        self.experts = experts
        self.router = router
        self.contextLength = length
        routing = router == nil ? .none : .learned
        self.trace = trace ? RoutingTrace(layers: config.layerCount, width: experts.count) : nil
        state = try model.makeState(capacity: length)
        contextSums = Array(repeating: Array(repeating: 0, count: config.hiddenSize), count: config.layerCount)
    }

    public var position: Int { state.count }
    public var effectiveTopK: Int { topKOverride ?? router?.topK ?? experts.count }
    public var effectiveTemperature: Float { temperatureOverride ?? router?.temperature ?? 1 }

    public func setRouting(_ mode: RoutingMode) throws {
        switch mode {
        case .learned, .soft:
            guard router != nil else {
                throw LoRAMixerError.state("routing '\(mode.name)' needs a router: load one into the mixer before creating the session")
            }
        case .fixed(let weights):
            guard weights.count == experts.count else {
                throw LoRAMixerError.invalidArgument("fixed routing needs \(experts.count) weights (one per expert), got \(weights.count)")
            }
            if let bad = weights.firstIndex(where: { !$0.isFinite }) {
                throw LoRAMixerError.invalidArgument("fixed weight [\(bad)] = \(weights[bad]) is not finite")
            }
            fixedWeights = weights
        case .uniform:
            guard !experts.isEmpty else { throw LoRAMixerError.state("uniform routing needs at least one expert") }
        case .none:
            break
        }
        routing = mode
    }

    /// Top-K for learned routing, 1...experts; nil restores the router file's value.
    public func setTopK(_ k: Int?) throws {
        if let k, !(1...max(experts.count, 1)).contains(k) || experts.isEmpty {
            throw LoRAMixerError.invalidArgument("top_k \(k) must be in 1...\(experts.count) (the session's expert count)")
        }
        topKOverride = k
    }

    /// Router temperature (> 0, finite); nil restores the router file's value.
    public func setTemperature(_ temperature: Float?) throws {
        if let temperature, !(temperature.isFinite && temperature > 0) {
            throw LoRAMixerError.invalidArgument("router temperature \(temperature) must be finite and > 0")
        }
        temperatureOverride = temperature
    }

    /// Throws `.state` ("context full") unless `count` more tokens fit in the context.
    public func checkRoom(for count: Int) throws {
        guard count <= state.remaining else {
            throw LoRAMixerError.state("context full: \(state.count) tokens held, \(count) more do not fit in n_ctx \(contextLength)")
        }
    }

    public func reset() {
        state.reset()
        for l in contextSums.indices { contextSums[l] = Array(repeating: 0, count: contextSums[l].count) }
        trace?.removeAll()
        lastHidden = nil
    }

    /// Processes `tokens` after those already held and returns the selected logits
    /// (`[rows, vocab]`). Validates everything first: on error the session is unchanged.
    public func evaluate(_ tokens: [Int32], logits selection: LogitsSelection) throws -> [Float] {
        guard !tokens.isEmpty else { throw LoRAMixerError.invalidArgument("no tokens to evaluate") }
        let vocab = model.config.vocabSize
        if let bad = tokens.firstIndex(where: { $0 < 0 || Int($0) >= vocab }) {
            throw LoRAMixerError.invalidArgument("token id \(tokens[bad]) at position \(bad) (0-based) is out of range (vocab size \(vocab))")
        }
        try checkRoom(for: tokens.count)
        var adapter = ExpertAdapter(
            config: model.config, experts: experts, router: router, mode: experts.isEmpty ? .none : routing, topK: effectiveTopK,
            temperature: effectiveTemperature, firstPosition: state.count, contextSums: contextSums)
        adapter.shouldAbort = abortCheck
        let hidden = try model.forward(tokens: tokens, state: state, adapter: &adapter, pool: pool)
        contextSums = adapter.contextSums
        trace?.append(tokens: tokens, perLayer: adapter.layerGates)
        let d = model.config.hiddenSize
        lastHidden = Array(hidden[((tokens.count - 1) * d)...])
        switch selection {
        case .none: return []
        case .last: return model.logits(hidden: lastHidden ?? [], rows: 1, pool: pool)
        case .all: return model.logits(hidden: hidden, rows: tokens.count, pool: pool)
        }
    }

    /// Options of `generate`.
    public struct GenerationOptions: Sendable {
        public var maxTokens: Int = 32
        public var sampling = SamplingOptions()
        public var stopTokens: Set<Int32> = []
        public init(maxTokens: Int = 32, sampling: SamplingOptions = SamplingOptions(), stopTokens: Set<Int32> = []) {
            self.maxTokens = maxTokens
            self.sampling = sampling
            self.stopTokens = stopTokens
        }
    }

    /// Evaluates `prompt` (may be empty to continue), then samples up to `maxTokens` tokens, each
    /// evaluated in turn so that a later call continues where this one ended. Stops at a stop
    /// token (not returned), when `onToken` returns false, or when the context is full; in that
    /// last case the final token, sampled from the last position, is returned but cannot be
    /// evaluated. If any step fails, the session is left as it was before the call (tokens
    /// already passed to `onToken` are void).
    public func generate(prompt: [Int32], options: GenerationOptions,
                         onToken: (Int32) -> Bool = { _ in true }) throws -> [Int32] {
        try atomically { try generateSteps(prompt: prompt, options: options, onToken: onToken) }
    }

    private func generateSteps(prompt: [Int32], options: GenerationOptions, onToken: (Int32) -> Bool) throws -> [Int32] {
        try options.sampling.validate()
        let vocab = model.config.vocabSize
        if let bad = options.stopTokens.first(where: { $0 < 0 || Int($0) >= vocab }) {
            throw LoRAMixerError.invalidArgument("stop token \(bad) is out of range (vocab size \(vocab))")
        }
        guard options.maxTokens >= 0 else { throw LoRAMixerError.invalidArgument("max_tokens must be >= 0") }
        var next: [Float]
        if prompt.isEmpty {
            guard let lastHidden else {
                throw LoRAMixerError.state("the prompt is empty and the session holds no tokens to continue from (evaluate a prompt first)")
            }
            next = model.logits(hidden: lastHidden, rows: 1, pool: pool)
        } else {
            next = try evaluate(prompt, logits: .last)
        }
        var sampler = Sampler(options: options.sampling)
        var output: [Int32] = []
        while output.count < options.maxTokens {
            let token = sampler.sample(next)
            if options.stopTokens.contains(token) { break }
            output.append(token)
            let goOn = onToken(token)
            guard goOn, output.count < options.maxTokens, state.remaining > 0 else {
                if state.remaining > 0 { _ = try evaluate([token], logits: .none) }
                break
            }
            next = try evaluate([token], logits: .last)
        }
        return output
    }

    /// Runs `body`; if it throws, the session is put back as it was before (cache, router
    /// or recurrent state, router context, trace, last hidden state), so a failed multi-step call leaves no partial state.
    func atomically<R>(_ body: () throws -> R) throws -> R {
        let (saved, sums, hidden, traced) = (state.snapshot(), contextSums, lastHidden, trace?.tokenCount ?? 0)
        do {
            return try body()
        } catch {
            state.restore(saved)
            contextSums = sums
            lastHidden = hidden
            trace?.truncate(toTokens: traced)
            throw error
        }
    }
}
