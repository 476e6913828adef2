/// tokenizer.json's decoders: `ByteLevel` for byte-level files; `Replace`, `ByteFallback`,
/// `Fuse`, `Strip` and `Metaspace` for SentencePiece-style ones; `Sequence` of any of them. Each
/// step maps the list of token strings to a new list, as in `tokenizers`; the result is joined
/// (with spaces when there is no decoder at all).
indirect enum TokenDecoder: Sendable {
    case none
    case byteLevel
    case replace(pattern: [UInt8], content: [UInt8])
    /// `<0xXX>` tokens to their bytes.
    case byteFallback
    /// All tokens into one.
    case fuse
    /// Up to `start` leading and `stop` trailing copies of `content` off each token.
    case strip(content: [UInt8], start: Int, stop: Int)
    /// The replacement back to a space; with `dropFirst` (prepend_scheme not `never`), the
    /// replacements of the first token are dropped instead.
    case metaspace(replacement: [UInt8], dropFirst: Bool)
    case sequence([TokenDecoder])

    /// What the bytes are for.
    enum Mode {
        /// The text `tokenizers` gives: each step that makes a string replaces invalid UTF-8 as
        /// `tokenizers` does (ByteLevel as `from_utf8_lossy`; ByteFallback one U+FFFD per byte).
        case text
        /// The same steps with the bytes kept raw (a character cut between tokens stays cut).
        case bytes
        /// What one token contributes in the middle of a text, for streaming: raw bytes, and the
        /// rules for the text's ends left out, namely Metaspace's first-token rule and any Strip
        /// after a Fuse (which only touches the start and end of the whole text). A Strip before
        /// a Fuse applies to every token, so to this one too.
        case piece
    }

    init(json: JSONValue, context: String) throws {
        if json == .null {
            self = .none
            return
        }
        guard let object = json.object, let type = object["type"]?.string else {
            throw LoRAMixerError.format("\(context): decoder must be an object with a string `type` or null, found \(json.kindName)")
        }
        let name = "\(context): decoder \(type)"
        switch type {
        case "ByteLevel":
            self = .byteLevel
        case "Replace":
            let (pattern, content) = try replacePattern(object, name: name)
            self = .replace(pattern: pattern, content: content)
        case "ByteFallback":
            self = .byteFallback
        case "Fuse":
            self = .fuse
        case "Strip":
            guard let content = object["content"]?.string, content.unicodeScalars.count == 1,
                  let start = object["start"]?.int, start >= 0, let stop = object["stop"]?.int, stop >= 0 else {
                throw LoRAMixerError.format("\(name): needs `content` (one character) and non-negative integers `start` and `stop`")
            }
            self = .strip(content: Array(content.utf8), start: start, stop: stop)
        case "Metaspace":
            let replacement = try metaspaceReplacement(object, name: name)
            self = .metaspace(replacement: Array(replacement.utf8), dropFirst: try MetaspacePrepend(object, name: name) != .never)
        case "Sequence":
            guard let steps = object["decoders"]?.array else {
                throw LoRAMixerError.format("\(name): `decoders` must be an array")
            }
            self = .sequence(try steps.map { try TokenDecoder(json: $0, context: context) })
        default:
            throw LoRAMixerError.format("\(name) is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)")
        }
    }

    func decode(_ tokens: [[UInt8]], mode: Mode) -> [UInt8] {
        if case .none = self {
            var output: [UInt8] = []
            for (index, token) in tokens.enumerated() {
                if index > 0 { output.append(UInt8(ascii: " ")) }
                output.append(contentsOf: token)
            }
            return output
        }
        var tokens = tokens
        var fused = false
        apply(&tokens, mode: mode, fused: &fused)
        return Array(tokens.joined())
    }

    /// One step; `fused` tells whether a Fuse ran before (for the piece mode's Strip rule).
    private func apply(_ tokens: inout [[UInt8]], mode: Mode, fused: inout Bool) {
        switch self {
        case .none:
            break
        case .byteLevel:
            var output: [UInt8] = []
            for token in tokens { ByteLevel.decode(String(decoding: token, as: UTF8.self), into: &output) }
            tokens = [mode == .text ? Array(String(decoding: output, as: UTF8.self).utf8) : output]
        case .replace(let pattern, let content):
            tokens = tokens.map { replacingAll($0, pattern, content) }
        case .byteFallback:
            tokens = Self.byteFallback(tokens, lossy: mode == .text)
        case .fuse:
            tokens = [Array(tokens.joined())]
            fused = true
        case .strip(let content, let start, let stop):
            if mode == .piece && fused { break }
            tokens = tokens.map { Self.strip($0, content, start, stop) }
        case .metaspace(let replacement, let dropFirst):
            for index in tokens.indices {
                let drop = dropFirst && index == 0 && mode != .piece
                tokens[index] = replacingAll(tokens[index], replacement, drop ? [] : [UInt8(ascii: " ")])
            }
        case .sequence(let steps):
            for step in steps { step.apply(&tokens, mode: mode, fused: &fused) }
        }
    }

    /// Runs of `<0xXX>` tokens become their bytes as one token; when `lossy` and the run is not
    /// valid UTF-8, one U+FFFD per byte instead, as `tokenizers` does.
    private static func byteFallback(_ tokens: [[UInt8]], lossy: Bool) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var run: [UInt8] = []
        func flush() {
            guard !run.isEmpty else { return }
            if lossy, String(validating: run, as: UTF8.self) == nil {
                result.append(contentsOf: repeatElement(Array("\u{FFFD}".utf8), count: run.count))
            } else {
                result.append(run)
            }
            run.removeAll()
        }
        for token in tokens {
            if let byte = byteToken(token) {
                run.append(byte)
            } else {
                flush()
                result.append(token)
            }
        }
        flush()
        return result
    }

    /// The byte of a `<0xXX>` token: six bytes, the two between "<0x" and ">" read as Rust's
    /// `u8::from_str_radix(_, 16)` does, which also takes a leading "+" ("<0x+F>" is 0x0F).
    private static func byteToken(_ token: [UInt8]) -> UInt8? {
        guard token.count == 6, token[0] == UInt8(ascii: "<"), token[1] == UInt8(ascii: "0"),
              token[2] == UInt8(ascii: "x"), token[5] == UInt8(ascii: ">") else { return nil }
        guard let low = hexDigit(token[4]) else { return nil }
        if token[3] == UInt8(ascii: "+") { return low }
        guard let high = hexDigit(token[3]) else { return nil }
        return high << 4 | low
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Up to `start` copies of `content` off the front and `stop` off the back. Where they
    /// overlap (`tokenizers` panics there) the token becomes empty.
    private static func strip(_ token: [UInt8], _ content: [UInt8], _ start: Int, _ stop: Int) -> [UInt8] {
        var from = 0
        for _ in 0..<start where token[from...].starts(with: content) { from += content.count }
        var to = token.count
        for _ in 0..<stop where to >= content.count && token[..<to].reversed().starts(with: content.reversed()) { to -= content.count }
        return from < to ? Array(token[from..<to]) : []
    }
}
