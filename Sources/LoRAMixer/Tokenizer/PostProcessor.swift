/// The post-processors byte-level files use. `ByteLevel` only trims offsets, so it leaves ids
/// as they are; `TemplateProcessing`'s `single` template puts special tokens (BOS, EOS) around
/// the text's ids when special tokens are asked for.
indirect enum PostProcessor: Sendable {
    case byteLevel
    /// The `single` template: each element is the special token's ids or the text's (`$A`).
    case template([TemplatePiece])
    case sequence([PostProcessor])

    enum TemplatePiece: Sendable {
        case special([Int32])
        case sequence
    }

    init(json: JSONValue, context: String) throws {
        guard let object = json.object, let type = object["type"]?.string else {
            throw LoRAMixerError.format("\(context): post_processor must be an object with a string `type`, found \(json.kindName)")
        }
        let name = "\(context): post_processor \(type)"
        switch type {
        case "ByteLevel":
            self = .byteLevel
        case "TemplateProcessing":
            guard let single = object["single"]?.array else {
                throw LoRAMixerError.format("\(name): `single` must be an array")
            }
            let specials = object["special_tokens"]?.object ?? JSONObject()
            var pieces: [TemplatePiece] = []
            for element in single {
                if let special = element.object?["SpecialToken"]?.object, let key = special["id"]?.string {
                    guard let entry = specials[key]?.object, let ids = entry["ids"]?.array else {
                        throw LoRAMixerError.format("\(name): special token \(quoted(key)) is not in `special_tokens`")
                    }
                    var values: [Int32] = []
                    for id in ids {
                        guard let value = id.int, value >= 0, value < Int(Int32.max) else {
                            throw LoRAMixerError.format("\(name): special token \(quoted(key)) has id \(id), expected a non-negative 32-bit integer")
                        }
                        values.append(Int32(value))
                    }
                    pieces.append(.special(values))
                } else if let sequence = element.object?["Sequence"]?.object, sequence["id"]?.string == "A" {
                    pieces.append(.sequence)
                } else {
                    throw LoRAMixerError.format("\(name): template element \(element.serialized()) is not supported in `single`")
                }
            }
            self = .template(pieces)
        case "Sequence":
            guard let steps = object["processors"]?.array else {
                throw LoRAMixerError.format("\(name): `processors` must be an array")
            }
            self = .sequence(try steps.map { try PostProcessor(json: $0, context: context) })
        default:
            throw LoRAMixerError.format("\(name) is not supported (supported: ByteLevel, TemplateProcessing, Sequence)")
        }
    }

    func apply(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .byteLevel:
            return ids
        case .template(let pieces):
            var result: [Int32] = []
            for piece in pieces {
                switch piece {
                case .special(let special): result.append(contentsOf: special)
                case .sequence: result.append(contentsOf: ids)
                }
            }
            return result
        case .sequence(let steps):
            return steps.reduce(ids) { $1.apply($0) }
        }
    }
}
