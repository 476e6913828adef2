/// The decoders byte-level files use: `ByteLevel` turns tokens back into bytes; no decoder joins
/// the tokens with spaces, as `tokenizers` does.
indirect enum TokenDecoder: Sendable {
    case none
    case byteLevel
    case sequence([TokenDecoder])

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
        case "Sequence":
            guard let steps = object["decoders"]?.array else {
                throw LoRAMixerError.format("\(name): `decoders` must be an array")
            }
            let decoders = try steps.map { try TokenDecoder(json: $0, context: context) }
            guard decoders.count == 1, case .byteLevel = decoders[0] else {
                throw LoRAMixerError.format("\(name): only a Sequence holding one ByteLevel decoder is supported")
            }
            self = .sequence(decoders)
        case "ByteFallback", "Metaspace", "Replace", "Strip", "Fuse":
            throw LoRAMixerError.format("\(name) (SentencePiece-style) is not supported yet")
        default:
            throw LoRAMixerError.format("\(name) is not supported (supported: ByteLevel, Sequence)")
        }
    }

    func decode(_ tokens: [String]) -> [UInt8] {
        var output: [UInt8] = []
        switch self {
        case .none:
            for (index, token) in tokens.enumerated() {
                if index > 0 { output.append(UInt8(ascii: " ")) }
                output.append(contentsOf: token.utf8)
            }
        case .byteLevel, .sequence:
            for token in tokens { ByteLevel.decode(token, into: &output) }
        }
        return output
    }
}
