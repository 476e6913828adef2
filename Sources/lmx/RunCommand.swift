import ArgumentParser
import Glibc
import LoRAMixer

/// `lmx run`: generation from prompt token ids, with an optional routing trace.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Generate token ids from a prompt, optionally writing the routing trace as JSON.",
        discussion: """
            Output: the generated token ids on one line of stdout, comma-separated, each printed as \
            soon as it is sampled (an empty line if none). A stop token ends generation and is not \
            printed. Generation also ends after --max-tokens tokens or when the context \
            (max_position_embeddings) is full; the token sampled from the last position is then \
            printed but never evaluated, so the trace ends one token short.

            Sampling is greedy unless --sample-temperature > 0; --sample-top-k and --sample-top-p \
            then restrict the candidates, and --seed makes the draw reproducible (given without \
            --sample-temperature, these three are a usage error rather than silently ignored).

            --trace FILE writes {"experts": [names], "layers": L, "tokens": [{"position": i, \
            "token": id, "layers": [[{"expert": name, "gate": g}, ...], ...]}, ...]} covering the \
            prompt and the generated tokens; each layer lists the applied experts, largest gate first.

            \(MixerOptions.routingDiscussion)
            """
    )

    @OptionGroup(title: "Model, experts and routing")
    var mixer: MixerOptions

    @Option(name: .customLong("prompt-tokens"), parsing: .unconditional,
            help: ArgumentHelp("Prompt token ids, comma-separated (e.g. 1,2,3).", valueName: "ids"),
            transform: TokenList.parse)
    var promptTokens: TokenList

    @Option(name: .customLong("max-tokens"), help: ArgumentHelp("Most tokens to generate.", valueName: "n"))
    var maxTokens = 32

    @Option(name: .customLong("sample-temperature"),
            help: ArgumentHelp("Sampling temperature; 0 = greedy.", valueName: "t"))
    var sampleTemperature: Float = 0

    @Option(name: .customLong("sample-top-k"),
            help: ArgumentHelp("Sample among the K most likely tokens; 0 = no limit (needs --sample-temperature).", valueName: "k"))
    var sampleTopK: Int?

    @Option(name: .customLong("sample-top-p"),
            help: ArgumentHelp("Nucleus sampling: smallest set of tokens with probability >= P, in (0, 1] (needs --sample-temperature).", valueName: "p"))
    var sampleTopP: Float?

    @Option(help: ArgumentHelp("Random seed for sampling (same seed, same tokens; needs --sample-temperature).", valueName: "n"))
    var seed: UInt64?

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop token ids, comma-separated (default: none).", valueName: "ids"),
            transform: TokenList.parse)
    var stop: TokenList?

    @Option(help: ArgumentHelp("Write the routing trace (prompt + generated tokens) to this JSON file.", valueName: "file"))
    var trace: String?

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens \(maxTokens) must be >= 0") }
        guard sampleTemperature.isFinite, sampleTemperature >= 0 else {
            throw ValidationError("--sample-temperature \(sampleTemperature) must be finite and >= 0 (0 = greedy)")
        }
        if let sampleTopK, sampleTopK < 0 {
            throw ValidationError("--sample-top-k \(sampleTopK) must be >= 0 (0 = no limit)")
        }
        if let sampleTopP, !(sampleTopP.isFinite && sampleTopP > 0 && sampleTopP <= 1) {
            throw ValidationError("--sample-top-p \(sampleTopP) must be in (0, 1]")
        }
        // Greedy decoding would silently ignore the sampling flags: refuse them instead.
        let sampling = [sampleTopK != nil ? "--sample-top-k" : nil, sampleTopP != nil ? "--sample-top-p" : nil,
                        seed != nil ? "--seed" : nil].compactMap { $0 }
        if let flag = sampling.first, sampleTemperature == 0 {
            throw ValidationError("\(flag) applies to sampling only: add --sample-temperature T (T > 0); greedy decoding would ignore it")
        }
    }

    func run() throws {
        let session = try mixer.makeSession(trace: trace != nil)
        try MixerOptions.checkTokens(promptTokens.ids, of: session, "--prompt-tokens", context: true)
        try MixerOptions.checkTokens(stop?.ids ?? [], of: session, "--stop")
        let options = Session.GenerationOptions(
            maxTokens: maxTokens,
            sampling: SamplingOptions(temperature: sampleTemperature, topK: sampleTopK ?? 0, topP: sampleTopP ?? 1, seed: seed ?? 0),
            stopTokens: Set(stop?.ids ?? []))
        var printed = 0
        do {
            _ = try session.generate(prompt: promptTokens.ids, options: options) { token in
                print(printed == 0 ? "\(token)" : ",\(token)", terminator: "")
                fflush(stdout)
                printed += 1
                return true
            }
        } catch {
            if printed > 0 { print() }
            throw error
        }
        print()
        if let trace, let routingTrace = session.trace {
            let json = TraceJSON.render(routingTrace, expertNames: session.experts.map(\.name))
            try writeFile(trace, Array(json.serialized().utf8) + [UInt8(ascii: "\n")])
        }
    }
}
