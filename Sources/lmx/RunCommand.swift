import ArgumentParser
import Glibc
import LoRAMixer

/// `lmx run`: generation from prompt token ids, with an optional routing trace.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Generate from a prompt (token ids or text), optionally writing the routing trace as JSON.",
        discussion: """
            Output with --prompt-tokens: the generated token ids on one line of stdout, \
            comma-separated, each printed as soon as it is sampled (an empty line if none). A stop \
            token ends generation and is not printed.

            Output with --prompt TEXT (needs a model with a tokenizer, tokenizer.json): the \
            generated text, written as it is produced (each piece flushed once it is whole UTF-8), \
            then a newline. The prompt is encoded with the tokenizer's BOS/EOS as its \
            post-processor adds them; special-token text written in it (e.g. <|eot_id|>) stays \
            text unless --parse-special, so that a prompt cannot forge control tokens. --chat \
            renders the prompt as one user message with the tokenizer's chat template (and the \
            generation prompt) instead. Generation stops at the model's end-of-turn ids (EOS, \
            generation_config.json's eos_token_id, <|eot_id|>-style tokens), which are not \
            printed, unless --ignore-eos; special tokens are not printed.

            With either prompt, generation also ends after --max-tokens tokens or when the context \
            (max_position_embeddings) is full; the token sampled from the last position is then \
            printed but never evaluated, so the trace ends one token short.

            Sampling is greedy unless --sample-temperature > 0; --sample-top-k and --sample-top-p \
            then restrict the candidates, and --seed makes the draw reproducible (given without \
            --sample-temperature, these three are a usage error rather than silently ignored).

            --trace FILE writes {"experts": [names], "layers": L, "tokens": [{"position": i, \
            "token": id, "piece": text, "layers": [[{"expert": name, "gate": g}, ...], ...]}, ...]} \
            covering the prompt and the generated tokens; each layer lists the applied experts, \
            largest gate first. "piece" (the token's text) is there when the model has a \
            tokenizer, with "bytes": [...] beside it when the token is not whole UTF-8.

            \(MixerOptions.routingDiscussion)
            """
    )

    @OptionGroup(title: "Model, experts and routing")
    var mixer: MixerOptions

    @Option(name: .customLong("prompt-tokens"), parsing: .unconditional,
            help: ArgumentHelp("Prompt token ids, comma-separated (e.g. 1,2,3); prints token ids.", valueName: "ids"),
            transform: TokenList.parse)
    var promptTokens: TokenList?

    @Option(help: ArgumentHelp("Prompt text, tokenized with the model's tokenizer; prints text.", valueName: "text"))
    var prompt: String?

    @Flag(help: "Render --prompt as a user message with the model's chat template.")
    var chat = false

    @Flag(name: .customLong("parse-special"),
          help: "With --prompt: recognise special-token text (e.g. <|eot_id|>) written in the prompt as those tokens.")
    var parseSpecial = false

    @Flag(name: .customLong("ignore-eos"), help: "With --prompt: do not stop at the model's end-of-turn tokens.")
    var ignoreEOS = false

    @Option(name: .customLong("max-tokens"), help: ArgumentHelp("Most tokens to generate.", valueName: "n"))
    var maxTokens = 32

    @OptionGroup(title: "Sampling")
    var sampling: SamplingFlags

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop token ids, comma-separated (default: none).", valueName: "ids"),
            transform: TokenList.parse)
    var stop: TokenList?

    @Option(help: ArgumentHelp("Write the routing trace (prompt + generated tokens) to this JSON file.", valueName: "file"))
    var trace: String?

    func validate() throws {
        if promptTokens != nil && prompt != nil {
            throw ValidationError("give the prompt as --prompt-tokens IDS or --prompt TEXT, not both")
        }
        if promptTokens == nil && prompt == nil {
            throw ValidationError("give a prompt: --prompt-tokens IDS (token ids) or --prompt TEXT (text)")
        }
        if chat && prompt == nil { throw ValidationError("--chat applies to --prompt TEXT (a text to render as a user message)") }
        if parseSpecial && (prompt == nil || chat) {
            throw ValidationError("--parse-special applies to --prompt TEXT without --chat (the chat template's own special tokens are always recognised)")
        }
        if ignoreEOS && prompt == nil {
            throw ValidationError("--ignore-eos applies to --prompt TEXT (with --prompt-tokens only --stop ends generation)")
        }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens \(maxTokens) must be >= 0") }
    }

    func run() throws {
        let session = try mixer.makeSession(trace: trace != nil)
        let options = Session.GenerationOptions(
            maxTokens: maxTokens,
            sampling: sampling.options,
            stopTokens: Set(stop?.ids ?? []))
        var tokenizer: Tokenizer?
        if let prompt {
            let textTokenizer = try ModelText.tokenizer(of: session.model, "--prompt", mixer.model)
            tokenizer = textTokenizer
            if chat { try ModelText.requireChatTemplate(textTokenizer) }
            let ids = try session.promptTokens(prompt, tokenizer: textTokenizer, chat: chat, parseSpecial: parseSpecial)
            guard !ids.isEmpty else { throw UsageError("--prompt: the text has no tokens (give a non-empty text)") }
            try MixerOptions.checkTokens(ids, of: session, chat ? "--prompt (with --chat)" : "--prompt", context: true)
            try MixerOptions.checkTokens(stop?.ids ?? [], of: session, "--stop")
            _ = try session.generateText(prompt: ids, tokenizer: textTokenizer, options: options, stopAtEndOfTurn: !ignoreEOS,
                                         onText: { piece in
                                             print(piece, terminator: "")
                                             fflush(stdout)
                                             return true
                                         })
            print()
        } else {
            let promptTokens = promptTokens?.ids ?? []
            try MixerOptions.checkTokens(promptTokens, of: session, "--prompt-tokens", context: true)
            try MixerOptions.checkTokens(stop?.ids ?? [], of: session, "--stop")
            var printed = 0
            do {
                _ = try session.generate(prompt: promptTokens, options: options) { token in
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
            if trace != nil && session.model.hasTokenizer { tokenizer = try? session.model.tokenizer() }
        }
        if let trace, let routingTrace = session.trace {
            let json = TraceJSON.render(routingTrace, expertNames: session.experts.map(\.name), tokenizer: tokenizer)
            try writeFile(trace, Array(json.serialized().utf8) + [UInt8(ascii: "\n")])
        }
    }
}

/// Text in and out of a model: its tokenizer, and a prompt rendered with its chat template.
enum ModelText {
    /// The model's tokenizer; a usage error naming `flag` when the model has none.
    static func tokenizer(of model: LanguageModel, _ flag: String, _ folder: String,
                          hint: String = "give token ids with --prompt-tokens") throws -> Tokenizer {
        guard model.hasTokenizer else {
            throw UsageError("\(flag): the model \(folder) has no tokenizer (no tokenizer.json): \(hint)")
        }
        return try model.tokenizer()
    }

    /// A usage error for --chat when the tokenizer has no chat template.
    static func requireChatTemplate(_ tokenizer: Tokenizer) throws {
        guard tokenizer.chatTemplateSource != nil else {
            throw UsageError("--chat: the model's tokenizer has no chat template (tokenizer_config.json has no chat_template)")
        }
    }
}
