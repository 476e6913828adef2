import ArgumentParser
import Glibc
import LoRAMixer

/// `lmx tokenize`: the token ids of a text, with the tokenizer of a model folder, a tokenizer
/// folder or a GGUF file.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text (the tokenizer of a model folder, a tokenizer folder or a .gguf file).",
        discussion: """
            Output: the ids on one line, separated by single spaces (an empty line for an empty \
            text). By default the text is tokenized as it is: no BOS/EOS is added (--add-special \
            adds what the tokenizer's post-processor adds) and special-token text such as \
            <|eot_id|> is tokenized as ordinary text (--parse-special recognises it as the special \
            token).

            --json prints one JSON array instead, one object per token: {"id": 9906, "token": \
            "Hello", "piece": "Hello", "bytes": [72, 101, 108, 108, 111], "special": false}. \
            "token" is the vocabulary entry as stored (e.g. "ĠHello" for byte-level BPE), "bytes" \
            the bytes the token decodes to and "piece" those bytes as text; a piece that is not \
            whole UTF-8 (a character split between tokens) has U+FFFD in "piece", and "bytes" \
            stays exact.
            """
    )

    @Option(help: ArgumentHelp("Model folder or tokenizer folder (tokenizer.json), or a .gguf file.", valueName: "path"))
    var model: String

    @Option(help: ArgumentHelp("The text to tokenize.", valueName: "text"))
    var text: String?

    @Option(help: ArgumentHelp("Tokenize the contents of this file (UTF-8).", valueName: "file"))
    var file: String?

    @Flag(name: .customLong("add-special"), help: "Add the tokenizer's special tokens (BOS/EOS) as its post-processor does.")
    var addSpecial = false

    @Flag(name: .customLong("parse-special"), help: "Recognise special-token text (e.g. <|eot_id|>) as the special token.")
    var parseSpecial = false

    @Flag(help: "Print a JSON array of {id, token, piece, bytes, special} objects.")
    var json = false

    func validate() throws {
        if text != nil && file != nil { throw ValidationError("give the text with --text or --file, not both") }
        if text == nil && file == nil { throw ValidationError("give the text to tokenize: --text TEXT or --file FILE") }
    }

    func run() throws {
        let tokenizer = try TokenizerPath.load(model, "--model \(model)")
        let input: String
        if let file {
            try InputPath.file(file, "--file \(file)")
            guard let bytes = readFile(file) else { throw CLIError("--file \(file): cannot read the file") }
            guard let decoded = String(validating: bytes, as: UTF8.self) else {
                throw CLIError("--file \(file): the file is not valid UTF-8")
            }
            input = decoded
        } else {
            input = text ?? ""
        }
        let ids = try tokenizer.encode(input, addSpecialTokens: addSpecial, parseSpecial: parseSpecial)
        if json {
            print(JSONValue.array(ids.map { TokenPiece.json(tokenizer, $0, full: true) }).serialized())
        } else {
            print(ids.map { String($0) }.joined(separator: " "))
        }
    }
}

/// `lmx detokenize`: the text of token ids.
struct DetokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detokenize",
        abstract: "Print the text of token ids (the tokenizer of a model folder, a tokenizer folder or a .gguf file).",
        discussion: """
            Output: the decoded text followed by a newline. Special tokens (BOS, EOS, <|eot_id|>, \
            ...) are left out unless --show-special. The bytes are written as decoded, so a text \
            cut inside a UTF-8 character comes out byte for byte. --ids takes the ids separated by \
            commas or blanks, so `lmx tokenize` output can be passed back as it is.
            """
    )

    @Option(help: ArgumentHelp("Model folder or tokenizer folder (tokenizer.json), or a .gguf file.", valueName: "path"))
    var model: String

    @Option(parsing: .unconditional, help: ArgumentHelp("Token ids, separated by commas or blanks (e.g. 1,2,3).", valueName: "ids"),
            transform: { try TokenList.parse($0, blanksSeparate: true) })
    var ids: TokenList

    @Flag(name: .customLong("show-special"), help: "Write special tokens' text too.")
    var showSpecial = false

    func run() throws {
        let tokenizer = try TokenizerPath.load(model, "--model \(model)")
        if let bad = ids.ids.firstIndex(where: { tokenizer.token($0) == nil }) {
            throw UsageError("--ids: token id \(ids.ids[bad]) at position \(bad) (0-based) is not in the tokenizer's vocabulary (\(tokenizer.vocabularySize) tokens)")
        }
        let bytes = tokenizer.decodeBytes(ids.ids, skipSpecialTokens: !showSpecial)
        writeStandardOutput(bytes + [UInt8(ascii: "\n")])
    }
}

/// Loading a tokenizer named on the command line.
enum TokenizerPath {
    /// A model or tokenizer folder (tokenizer.json and its configuration files) or a .gguf file;
    /// `typed` is the flag and value as typed, for messages.
    static func load(_ path: String, _ typed: String) throws -> Tokenizer {
        guard let kind = fileKind(path) else {
            throw CLIError("\(typed): \(path.hasSuffix(".gguf") ? "file" : "folder") \(path) does not exist")
        }
        if kind == .folder {
            guard fileKind(path + "/tokenizer.json") == .file else {
                throw CLIError("\(typed): the folder has no tokenizer (no tokenizer.json in \(path))")
            }
        } else if !path.hasSuffix(".gguf") {
            throw CLIError("\(typed): \(path) is a file but not a .gguf file: give a folder with tokenizer.json or a .gguf file")
        }
        return try Tokenizer.load(path: path)
    }
}

/// How one token is shown: its text, and its bytes when they matter.
enum TokenPiece {
    /// `{"id", "token", "piece", "bytes", "special"}` when `full`; otherwise `{"piece"}` plus
    /// `"bytes"` only when the piece is not whole UTF-8 (the routing trace). Unknown ids give
    /// `"piece": null`.
    static func json(_ tokenizer: Tokenizer, _ id: Int32, full: Bool) -> JSONValue {
        var object = JSONObject()
        if full { object["id"] = JSONValue(Int(id)) }
        guard let bytes = tokenizer.tokenToBytes(id) else {
            object["piece"] = .null
            return .object(object)
        }
        let whole = String(validating: bytes, as: UTF8.self)
        if full { object["token"] = tokenizer.token(id).map(JSONValue.string) ?? .null }
        object["piece"] = .string(whole ?? String(decoding: bytes, as: UTF8.self))
        if full || whole == nil { object["bytes"] = .array(bytes.map { JSONValue(Int($0)) }) }
        if full { object["special"] = .bool(tokenizer.isSpecial(id)) }
        return .object(object)
    }
}

/// `bytes` on stdout as they are (after what `print` has buffered).
func writeStandardOutput(_ bytes: [UInt8]) {
    fflush(stdout)
    var rest = bytes[...]
    while !rest.isEmpty {
        let count = rest.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress!, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return }
        rest = rest.dropFirst(count)
    }
}
