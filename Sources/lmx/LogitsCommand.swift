import ArgumentParser
import LoRAMixer

/// `lmx logits`: one forward pass over the given tokens, logits of every position to a .npy file.
struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Write the logits of every position of a token sequence as a NumPy .npy file.",
        discussion: """
            Evaluates --tokens in one pass from an empty context and writes float32 logits of shape \
            [tokens, vocab] (C order, NumPy format 1.0) to --out.

            \(MixerOptions.routingDiscussion)
            """
    )

    @OptionGroup(title: "Model, experts and routing")
    var mixer: MixerOptions

    @Option(parsing: .unconditional, help: ArgumentHelp("Token ids to evaluate, comma-separated (e.g. 1,2,3).", valueName: "ids"),
            transform: TokenList.parse)
    var tokens: TokenList

    @Option(help: ArgumentHelp("Output .npy file (overwritten).", valueName: "file"))
    var out: String

    func run() throws {
        let session = try mixer.makeSession(trace: false)
        try MixerOptions.checkTokens(tokens.ids, of: session, "--tokens", context: true)
        let logits = try session.evaluate(tokens.ids, logits: .all)
        let vocab = session.model.config.vocabSize
        try writeFile(out, NPYWriter.float32(logits, shape: [tokens.ids.count, vocab]))
        print("wrote \(tokens.ids.count) x \(vocab) float32 logits (routing \(session.routing.name)) to \(out)")
    }
}
