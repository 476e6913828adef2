/// What a model folder says about its tokenizer besides `tokenizer.json`: the special tokens and
/// chat template of `tokenizer_config.json` (a special token `special_tokens_map.json` also names
/// is taken from that file, as transformers does) and the
/// stop ids of `generation_config.json`. Every file is optional; a file that exists but is not
/// what it should be is an error naming it.
public struct TokenizerConfiguration: Sendable, Equatable {
    public var bosToken: String?
    public var eosToken: String?
    public var padToken: String?
    public var unkToken: String?
    /// The Jinja chat template (for a file with several named templates, the one named "default").
    public var chatTemplate: String?
    /// `generation_config.json`'s `eos_token_id`, as a list.
    public var generationEOS: [Int32] = []

    public init(bosToken: String? = nil, eosToken: String? = nil, padToken: String? = nil,
                unkToken: String? = nil, chatTemplate: String? = nil, generationEOS: [Int32] = []) {
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.padToken = padToken
        self.unkToken = unkToken
        self.chatTemplate = chatTemplate
        self.generationEOS = generationEOS
    }

    /// Reads the optional files of `directory`.
    public init(directory: String) throws {
        let tokenNames = ["bos_token", "eos_token", "pad_token", "unk_token"]
        var tokens: [String: String] = [:]
        // transformers reads tokenizer_config.json, then lets special_tokens_map.json override it
        for file in ["tokenizer_config.json", "special_tokens_map.json"] {
            guard let object = try Self.readObject(directory, file) else { continue }
            let context = SystemFiles.join(directory, file)
            for name in tokenNames {
                guard let value = object[name], value != .null else { continue }
                tokens[name] = try Self.tokenText(value, "\(context): `\(name)`")
            }
            if file == "tokenizer_config.json", let template = object["chat_template"], template != .null {
                chatTemplate = try Self.template(template, context: "\(context): `chat_template`")
            }
        }
        bosToken = tokens["bos_token"]
        eosToken = tokens["eos_token"]
        padToken = tokens["pad_token"]
        unkToken = tokens["unk_token"]
        if let generation = try Self.readObject(directory, "generation_config.json") {
            let context = "\(SystemFiles.join(directory, "generation_config.json")): `eos_token_id`"
            switch generation["eos_token_id"] {
            case nil, .null?:
                break
            case .array(let items)?:
                generationEOS = try items.map { try Self.tokenID($0, context) }
            case let single?:
                generationEOS = [try Self.tokenID(single, context)]
            }
        }
    }

    private static func readObject(_ directory: String, _ name: String) throws -> JSONObject? {
        let path = SystemFiles.join(directory, name)
        guard SystemFiles.exists(path) else { return nil }
        let document = try JSONParser.parse(try SystemFiles.read(path), context: path)
        guard let object = document.object else {
            throw LoRAMixerError.format("\(path): expected a JSON object, found \(document.kindName)")
        }
        return object
    }

    /// A token given as its text or as an AddedToken object (`{"content": ...}`).
    private static func tokenText(_ value: JSONValue, _ context: String) throws -> String {
        if let text = value.string ?? value.object?["content"]?.string { return text }
        throw LoRAMixerError.format("\(context) must be a string or an object with a string `content`, found \(value.kindName)")
    }

    private static func tokenID(_ value: JSONValue, _ context: String) throws -> Int32 {
        guard let id = value.int, id >= 0, id <= Int(Int32.max) else {
            throw LoRAMixerError.format("\(context) must be a non-negative 32-bit integer or a list of them, found \(value)")
        }
        return Int32(id)
    }

    /// `chat_template` is a string, or a list of `{"name", "template"}` of which "default" is used.
    private static func template(_ value: JSONValue, context: String) throws -> String {
        if let text = value.string { return text }
        guard let list = value.array else {
            throw LoRAMixerError.format("\(context) must be a string or a list of {name, template}, found \(value.kindName)")
        }
        for entry in list {
            if entry.object?["name"]?.string == "default", let text = entry.object?["template"]?.string { return text }
        }
        throw LoRAMixerError.format("\(context) is a list without a template named \"default\"")
    }
}
