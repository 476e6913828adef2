import ArgumentParser
import Foundation
import LoRAMixer

/// The `lmx` command line tool: inspect model/adapter/router files, compute logits, and generate
/// with routed LoRA experts. Every failure ends in one line on stderr, `lmx: error: <message>`.
@main
struct LMX: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lmx",
        abstract: "Run a base language model with routed LoRA experts (LoRA-Mixer).",
        discussion: """
            Token ids are given and printed as plain integers: lmx does not tokenize text.
            Errors are reported as one line on stderr, 'lmx: error: <message>', with exit status 1 \
            for runtime failures and 64 for usage errors.
            """,
        subcommands: [InspectCommand.self, LogitsCommand.self, RunCommand.self, TrainCommand.self]
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
        let code = exitCode(for: error)
        if code == .success {
            let text = fullMessage(for: error)
            if !text.isEmpty { print(text) }
            Foundation.exit(code.rawValue)
        }
        let message: String
        switch error {
        case let error as LoRAMixerError: message = error.message
        case let error as CLIError: message = error.message
        default: message = self.message(for: error)
        }
        if !message.isEmpty {
            FileHandle.standardError.write(Data("lmx: error: \(oneLine(message))\n".utf8))
        }
        Foundation.exit(code.rawValue)
    }

    /// Messages from deeper layers may span lines; the report is always one.
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
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
