import ArgumentParser
import Glibc
import LoRAMixer

/// The `lmx` command line tool: inspect model/adapter/router files, compute logits, and generate
/// with routed LoRA experts. Every failure ends in one line on stderr, `lmx: error: <message>`.
@main
struct LMX: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lmx",
        abstract: "Run a base language model with routed LoRA experts (LoRA-Mixer).",
        discussion: """
            Token ids are given and printed as plain integers (--prompt-tokens, --tokens); with a \
            model that has a tokenizer (tokenizer.json), `lmx run --prompt`, `lmx chat` and `lmx \
            train` take text, and `lmx tokenize`/`lmx detokenize` convert between the two.
            Errors are reported as one line on stderr, 'lmx: error: <message>', with exit status 1 \
            for runtime failures (a missing or invalid file included) and 64 (EX_USAGE) for usage \
            errors: a bad or out-of-range flag value, a token id beyond the model's vocabulary, \
            flags that contradict each other. Positions in messages are counted from 0.
            """,
        subcommands: [InspectCommand.self, TokenizeCommand.self, DetokenizeCommand.self, LogitsCommand.self, RunCommand.self,
                      ChatCommand.self, TrainCommand.self]
    )

    /// Parses, runs, and turns every error into the one-line report; help goes to stdout.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(reporting: error)
        }
    }

    static func exit(reporting error: Error) -> Never {
        let code = error is UsageError ? ExitCode.validationFailure : exitCode(for: error)
        if code == .success {
            let text = fullMessage(for: error)
            if !text.isEmpty { print(text) }
            Glibc.exit(code.rawValue)
        }
        let message: String
        switch error {
        case let error as LoRAMixerError: message = error.message
        case let error as CLIError: message = error.message
        case let error as UsageError: message = error.message
        default: message = self.message(for: error)
        }
        if !message.isEmpty {
            writeStandardError("lmx: error: \(oneLine(message))\n")
        }
        Glibc.exit(code.rawValue)
    }

    /// Messages from deeper layers may span lines; the report is always one.
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingBlanks() }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
    }
}

/// A runtime failure found by the CLI itself (exit status 1).
struct CLIError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// A usage error found only once a file has been read (a token id beyond the model's vocabulary,
/// a prompt longer than its context): exit status 64 (EX_USAGE), like argument-parser's own
/// `ValidationError`, and the message names the flag as typed.
struct UsageError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Checks that a path named on the command line exists and is of the right kind before anything
/// is loaded, so that a typo says "does not exist" rather than what the folder lacks.
enum InputPath {
    /// `flag value` as typed, e.g. `--model /x` or `--expert e0=/x`.
    static func folder(_ path: String, _ typed: String) throws {
        try check(path, typed, folder: true)
    }

    static func file(_ path: String, _ typed: String) throws {
        try check(path, typed, folder: false)
    }

    private static func check(_ path: String, _ typed: String, folder: Bool) throws {
        guard let kind = fileKind(path) else {
            throw CLIError("\(typed): \(folder ? "folder" : "file") \(path) does not exist")
        }
        if folder && kind != .folder { throw CLIError("\(typed): \(path) is a file, not a folder") }
        if !folder && kind == .folder { throw CLIError("\(typed): \(path) is a folder, not a file") }
    }
}
