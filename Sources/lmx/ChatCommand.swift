import ArgumentParser
import Glibc
import LoRAMixer

/// `lmx chat`: an interactive conversation on stdin/stdout with the model's chat template,
/// the experts and the routing of `lmx run`.
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with the model (its tokenizer and chat template), reading lines from stdin.",
        discussion: """
            Each line read from stdin is a user message; the reply is written to stdout as it is \
            generated, then a newline. Works in a terminal (a "> " prompt is shown) and with a pipe \
            (no prompt: only the replies are written), e.g. echo "12+30=" | lmx chat --model DIR.

            Every turn renders the whole conversation with the tokenizer's chat template (with the \
            generation prompt). When the rendered tokens start with what the session already holds, \
            only the new ones are evaluated (the KV cache is reused); otherwise the session is reset \
            and the conversation evaluated again. When the conversation no longer fits the \
            context, the oldest turns are left out (a note on stderr says so). A reply ends at the \
            model's end-of-turn ids (unless --ignore-eos), after --max-tokens tokens, or when the \
            context is full.

            A model without a chat template (but with a tokenizer) falls back to plain \
            continuation, with a note on stderr: the conversation is the text of the messages \
            joined, each reply followed by a newline. A model without a tokenizer is refused (exit \
            64).

            Commands: /help; /reset (a new conversation); /experts (for the last reply: per layer, \
            the experts the routing applied over the positions that produced the reply's tokens, \
            with how many of those positions each was applied at and its mean gate, 0 where not \
            applied); /quit (or end of input). A line starting with // sends the text from its \
            second /.

            Ctrl-C while a reply is generated stops that reply (what was generated stays in the \
            conversation) and returns to the prompt; Ctrl-C at the prompt leaves, like /quit.

            \(MixerOptions.routingDiscussion)
            """
    )

    @OptionGroup(title: "Model, experts and routing")
    var mixer: MixerOptions

    @Option(name: .customLong("max-tokens"), help: ArgumentHelp("Most tokens per reply.", valueName: "n"))
    var maxTokens = 512

    @OptionGroup(title: "Sampling")
    var sampling: SamplingFlags

    @Flag(name: .customLong("ignore-eos"), help: "Do not stop a reply at the model's end-of-turn tokens.")
    var ignoreEOS = false

    @Option(help: ArgumentHelp("A system message at the start of every conversation.", valueName: "text"))
    var system: String?

    @Flag(help: "Say on stderr, each turn, how many tokens the session reused and how many it evaluated.")
    var verbose = false

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens \(maxTokens) must be >= 1") }
    }

    func run() throws {
        let session = try mixer.makeSession(trace: true)
        let tokenizer = try ModelText.tokenizer(of: session.model, "--model", mixer.model,
                                                hint: "lmx chat needs one to read and write text")
        if tokenizer.chatTemplateSource == nil {
            writeStandardError("lmx: note: the model has no chat template: each message continues the text (the messages joined, each reply followed by a newline)\n")
        }
        var chat = Conversation(session: session, tokenizer: tokenizer, system: system)
        chat.verbose = verbose
        let options = Session.GenerationOptions(maxTokens: maxTokens, sampling: sampling.options)
        let interactive = isatty(STDIN_FILENO) != 0
        var input = LineReader()
        Interrupt.installInterruptingReads()
        while true {
            if interactive {
                print("> ", terminator: "")
                fflush(stdout)
            }
            Interrupt.clear()
            guard let line = input.nextLine() else {
                if interactive { print() }
                break
            }
            let text = line.trimmingBlanks()
            if text.isEmpty { continue }
            if text.hasPrefix("/") && !text.hasPrefix("//") {
                switch text {
                case "/quit", "/exit": return
                case "/reset":
                    chat.reset()
                    print("(new conversation)")
                case "/experts": print(chat.expertsReport())
                case "/help":
                    print("""
                        /reset    start a new conversation
                        /experts  the experts routed to for the last reply, per layer
                        /quit     leave (also Ctrl-D, or Ctrl-C at the prompt)
                        //text    send a message that starts with /
                        Ctrl-C while a reply is written stops the reply.
                        """)
                default: print("unknown command \(text) (/help lists the commands)")
                }
                fflush(stdout)
                continue
            }
            try chat.reply(to: text.hasPrefix("//") ? String(text.dropFirst()) : text, options: options,
                           stopAtEndOfTurn: !ignoreEOS)
        }
    }
}

/// The conversation of `lmx chat`: its messages, and the session that holds their tokens.
struct Conversation {
    let session: Session
    let tokenizer: Tokenizer
    let system: String?
    private(set) var messages: [(role: String, content: String)] = []
    /// Trace positions that produced the last reply's tokens (and its end-of-turn token).
    private(set) var lastReply: Range<Int>?
    /// Report each turn's reuse of the session's tokens on stderr.
    var verbose = false

    init(session: Session, tokenizer: Tokenizer, system: String?) {
        self.session = session
        self.tokenizer = tokenizer
        self.system = system
        reset()
    }

    mutating func reset() {
        messages = system.map { [(role: "system", content: $0)] } ?? []
        session.reset()
        lastReply = nil
    }

    /// The conversation's tokens, ending with the generation prompt.
    func render() throws -> [Int32] {
        guard tokenizer.chatTemplateSource != nil else {
            // Plain continuation: the messages joined, each reply followed by a newline.
            let text = messages.map { $0.role == "assistant" ? $0.content + "\n" : $0.content }.joined()
            return try tokenizer.encode(text, addSpecialTokens: true, parseSpecial: true)
        }
        return try tokenizer.encodeChat(messages: Tokenizer.messages(messages), addGenerationPrompt: true)
    }

    /// Adds the user's message, streams the reply to stdout and adds it. Ctrl-C stops the reply
    /// (or, during the prompt's evaluation, the turn, and the message is taken back).
    mutating func reply(to text: String, options: Session.GenerationOptions, stopAtEndOfTurn: Bool) throws {
        messages.append((role: "user", content: text))
        var ids = try render()
        let first = system == nil ? 0 : 1
        var dropped = 0
        while ids.count >= session.contextLength && messages.count - first > 1 {
            // Leave out the oldest turn (user message and reply).
            messages.removeSubrange(first..<min(first + 2, messages.count - 1))
            dropped += 1
            ids = try render()
        }
        if dropped > 0 {
            writeStandardError("lmx: note: the conversation no longer fits the context of \(session.contextLength) tokens: the oldest \(dropped == 1 ? "turn is" : "\(dropped) turns are") left out\n")
        }
        guard ids.count < session.contextLength else {
            messages.removeLast()
            writeStandardError("lmx: error: the message (\(ids.count) tokens) does not fit the context of \(session.contextLength) tokens\n")
            return
        }
        let held = session.trace?.tokens ?? []
        let newTokens: ArraySlice<Int32>
        if held.count < ids.count && held.count == session.position && ids.starts(with: held) {
            newTokens = ids[held.count...]
            if verbose { writeStandardError("lmx: \(held.count) tokens reused, \(newTokens.count) evaluated\n") }
        } else {
            if verbose {
                writeStandardError("lmx: session reset (the conversation does not start with its \(held.count) tokens), \(ids.count) tokens evaluated\n")
            }
            session.reset()
            newTokens = ids[...]
        }
        session.abortCheck = { Interrupt.requested }
        defer { session.abortCheck = nil }
        do {
            _ = try session.evaluate(Array(newTokens), logits: .none)
        } catch let error as LoRAMixerError where error.kind == .cancelled {
            messages.removeLast()
            writeStandardError("\nlmx: stopped (Ctrl-C) before the reply: the message is not kept\n")
            return
        }
        session.abortCheck = nil
        let promptEnd = session.position
        let generation = try session.generateText(prompt: [], tokenizer: tokenizer, options: options,
                                                  stopAtEndOfTurn: stopAtEndOfTurn, onText: { piece in
            print(piece, terminator: "")
            fflush(stdout)
            return !Interrupt.requested
        })
        print()
        fflush(stdout)
        messages.append((role: "assistant", content: generation.text))
        let produced = generation.tokens.count + (generation.stopReason == .stopToken ? 1 : 0)
        lastReply = (promptEnd - 1)..<min(session.position, promptEnd - 1 + produced)
        switch generation.stopReason {
        case .stoppedByCaller: writeStandardError("lmx: reply stopped (Ctrl-C)\n")
        case .contextFull:
            writeStandardError("lmx: note: the context (\(session.contextLength) tokens) is full: the reply is cut; /reset starts a new conversation\n")
        case .stopToken, .maxTokens: break
        }
    }

    /// `/experts`: per layer, each applied expert with the number of reply positions it was
    /// applied at and its mean gate over them (0 where not applied), largest first.
    func expertsReport() -> String {
        guard !session.experts.isEmpty else { return "no experts: the base model alone" }
        guard let lastReply, !lastReply.isEmpty, let trace = session.trace, lastReply.upperBound <= trace.tokenCount else {
            return "no reply yet"
        }
        let names = session.experts.map(\.name)
        let count = lastReply.count
        var lines = ["last reply: \(count) position\(count == 1 ? "" : "s") (\(lastReply.lowerBound)...\(lastReply.upperBound - 1), 0-based), routing \(session.routing.name)"]
        var overall = Array(repeating: (applied: 0, gates: Float(0)), count: names.count)
        func describe(_ totals: [(applied: Int, gates: Float)], positions: Int) -> String {
            let used = totals.indices.filter { totals[$0].applied > 0 }
                .sorted { totals[$0].gates > totals[$1].gates || (totals[$0].gates == totals[$1].gates && $0 < $1) }
            guard !used.isEmpty else { return "none" }
            return used.map { e in
                "\(names[e]) \(totals[e].applied)/\(positions) (mean gate \(cFormat("%.3f", Double(totals[e].gates / Float(positions)))))"
            }.joined(separator: ", ")
        }
        for layer in 0..<trace.layers {
            var totals = Array(repeating: (applied: 0, gates: Float(0)), count: names.count)
            for position in lastReply {
                for (expert, gate) in trace.entry(token: position, layer: layer) where expert < names.count {
                    totals[expert].applied += 1
                    totals[expert].gates += gate
                    overall[expert].applied += 1
                    overall[expert].gates += gate
                }
            }
            lines.append("layer \(layer): \(describe(totals, positions: count))")
        }
        lines.append("all layers: \(describe(overall, positions: count * trace.layers))")
        return lines.joined(separator: "\n")
    }
}

/// Lines of stdin (a terminal or a pipe) that Ctrl-C interrupts: SIGINT may be delivered to any
/// thread (the session's workers included), so the read waits with poll() and looks at the flag.
struct LineReader {
    private var buffer: [UInt8] = []
    private var ended = false

    /// The next line without its newline (and a final line without one); nil at the end of the
    /// input or when Ctrl-C was pressed. Bytes that are not UTF-8 become U+FFFD.
    mutating func nextLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[..<newline]
                buffer.removeSubrange(...newline)
                return String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
            }
            if ended {
                guard !buffer.isEmpty else { return nil }
                defer { buffer.removeAll() }
                return String(decoding: buffer, as: UTF8.self)
            }
            if Interrupt.requested { return nil }
            var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 100)
            if ready < 0 && errno != EINTR { ended = true }
            guard ready > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress!, $0.count) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if count <= 0 { ended = true; continue }
            buffer += chunk[..<count]
        }
    }
}
