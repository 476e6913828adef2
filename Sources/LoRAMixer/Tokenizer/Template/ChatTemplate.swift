/// A compiled chat template (the Jinja text of `tokenizer_config.json`'s or a GGUF file's
/// `chat_template`), rendered as transformers' `apply_chat_template(tokenize=False)` renders it:
/// jinja2 with `trim_blocks` and `lstrip_blocks`, the `raise_exception` and `strftime_now`
/// globals, `namespace`, the `tojson` filter with its json.dumps arguments, the `generation` tag
/// and loop controls. Constructs outside the supported subset are refused at compile time or when
/// reached, with an error naming the construct and its line and column.
public struct ChatTemplate {
    private let source: TemplateSource
    private let nodes: [TemplateNode]

    /// Compiles `source`; throws a `.format` error naming the line and column of a syntax error or
    /// of an unsupported tag.
    public init(source: String) throws {
        let normalized = TemplateSource(source)
        self.source = normalized
        self.nodes = try TemplateParser.parse(normalized)
    }

    /// Renders `messages` (each an object with a string `role` and a `content` that is kept as
    /// given — a string, or a list of parts for templates that take them).
    /// `extra` adds or overrides template variables (`tools`, `documents`, `date_string`, ...).
    /// Throws `.invalidArgument` for messages that are not role/content objects and for a
    /// template's own `raise_exception(...)` (the message is the template's), `.format` for
    /// errors while rendering (with the position).
    public func render(messages: [JSONValue], addGenerationPrompt: Bool, bosToken: String = "",
                       eosToken: String = "", extra: [String: JSONValue] = [:]) throws -> String {
        var converted: [TemplateValue] = []
        for (index, message) in messages.enumerated() {
            guard let object = message.object else {
                throw LoRAMixerError.invalidArgument("chat message \(index) must be an object with 'role' and 'content', found \(message.kindName)")
            }
            guard let role = object["role"] else {
                throw LoRAMixerError.invalidArgument("chat message \(index) has no 'role'")
            }
            guard role.string != nil else {
                throw LoRAMixerError.invalidArgument("chat message \(index): 'role' must be a string, found \(role.kindName)")
            }
            guard let content = object["content"] else {
                throw LoRAMixerError.invalidArgument("chat message \(index) has no 'content'")
            }
            switch content {
            case .string, .array, .null: break
            default:
                throw LoRAMixerError.invalidArgument("chat message \(index): 'content' must be a string, a list of parts or null, found \(content.kindName)")
            }
            converted.append(try Self.convert(message, depth: 0, context: "chat message \(index)"))
        }
        var globals: [String: TemplateValue] = [
            "messages": .list(converted),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
            "tools": .none,
            "documents": .none,
        ]
        for name in TemplateRenderer.globalFunctions {
            globals[name] = .function(TemplateFunction(name: name, receiver: nil))
        }
        for (name, value) in extra {
            globals[name] = try Self.convert(value, depth: 0, context: "template variable '\(name)'")
        }
        var renderer = TemplateRenderer(source: source, globals: globals)
        do {
            _ = try renderer.render(nodes)
        } catch let raised as ChatTemplateRaised {
            throw LoRAMixerError.invalidArgument("chat template raised an exception: \(raised.message)")
        }
        return renderer.output
    }

    /// Convenience for messages given as dictionaries.
    public func render(messages: [[String: JSONValue]], addGenerationPrompt: Bool, bosToken: String = "",
                       eosToken: String = "", extra: [String: JSONValue] = [:]) throws -> String {
        let values = messages.map { message -> JSONValue in
            var object = JSONObject()
            for key in ["role", "content"] where message[key] != nil { object[key] = message[key] }
            for key in message.keys.sorted() where key != "role" && key != "content" { object[key] = message[key] }
            return .object(object)
        }
        return try render(messages: values, addGenerationPrompt: addGenerationPrompt, bosToken: bosToken,
                          eosToken: eosToken, extra: extra)
    }

    static let maximumValueDepth = 128

    /// A JSON value as the Python object json.loads gives: integers stay int, other numbers float.
    static func convert(_ value: JSONValue, depth: Int, context: String) throws -> TemplateValue {
        guard depth <= maximumValueDepth else {
            throw LoRAMixerError.invalidArgument("\(context) is nested deeper than \(maximumValueDepth) levels")
        }
        switch value {
        case .null: return .none
        case .bool(let flag): return .bool(flag)
        case .number(let text):
            if let integer = Int(text) { return .int(integer) }
            guard let number = Double(text) else {
                throw LoRAMixerError.invalidArgument("\(context) has an invalid number '\(text)'")
            }
            return .double(number)
        case .string(let text): return .string(text)
        case .array(let items): return .list(try items.map { try convert($0, depth: depth + 1, context: context) })
        case .object(let object):
            var dict = TemplateDict()
            for (key, member) in object.entries { dict[key] = try convert(member, depth: depth + 1, context: context) }
            return .dict(dict)
        }
    }
}
