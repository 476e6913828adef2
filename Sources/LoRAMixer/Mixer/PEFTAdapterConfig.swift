/// The parts of PEFT's `adapter_config.json` that decide a LoRA's shape and scale, validated.
struct PEFTAdapterConfig {
    let source: String
    let rank: Int
    let alpha: Double
    let useRSLoRA: Bool
    let rankPattern: [(pattern: String, value: Int)]
    let alphaPattern: [(pattern: String, value: Double)]

    init(json: JSONValue, source: String) throws {
        guard let root = json.object else { throw LoRAMixerError.format("\(source): top level is not a JSON object") }
        let fields = ConfigFields(object: root, source: source)
        self.source = source
        if let type = try fields.optionalString("peft_type"), type != "LORA" {
            throw LoRAMixerError.format("\(source): peft_type '\(type)' is not supported (expected 'LORA')")
        }
        if try fields.optionalBool("use_dora") == true {
            throw LoRAMixerError.format("\(source): use_dora = true (DoRA) is not supported")
        }
        if try fields.optionalBool("fan_in_fan_out") == true {
            throw LoRAMixerError.format("\(source): fan_in_fan_out = true is for GPT-2 style Conv1D layers; llama-family projections are nn.Linear")
        }
        if let bias = try fields.optionalString("bias"), bias != "none" {
            throw LoRAMixerError.format("\(source): bias = '\(bias)' trains base-model biases, which loramixer does not load (expected 'none')")
        }
        if let saved = root["modules_to_save"]?.array, !saved.isEmpty {
            throw LoRAMixerError.format("\(source): modules_to_save replaces whole base modules (\(saved.compactMap(\.string).joined(separator: ", "))), which loramixer does not support")
        }
        rank = try fields.positiveInt("r")
        alpha = try fields.optionalDouble("lora_alpha") ?? Double(rank)
        useRSLoRA = try fields.optionalBool("use_rslora") ?? false
        rankPattern = try Self.pattern("rank_pattern", fields: fields) { value in value.int.flatMap { $0 > 0 ? $0 : nil } }
        alphaPattern = try Self.pattern("alpha_pattern", fields: fields) { value in value.double.flatMap { $0.isFinite ? $0 : nil } }
    }

    func rank(for moduleKey: String) throws -> Int {
        try Self.match(rankPattern, moduleKey, source: source) ?? rank
    }

    func alpha(for moduleKey: String) throws -> Double {
        try Self.match(alphaPattern, moduleKey, source: source) ?? alpha
    }

    private static func pattern<T>(_ key: String, fields: ConfigFields, value: (JSONValue) -> T?) throws -> [(pattern: String, value: T)] {
        guard let object = try fields.optionalObject(key) else { return [] }
        return try object.keys.map { pattern in
            guard let parsed = object[pattern].flatMap(value) else {
                throw LoRAMixerError.format("\(fields.source): \(key)['\(pattern)'] is not a valid value")
            }
            return (pattern, parsed)
        }
    }

    /// PEFT's rule: the first pattern `p` (in file order) such that the module name fully matches
    /// `(.*\.)?(p)`, where `p` is a regular expression.
    private static func match<T>(_ patterns: [(pattern: String, value: T)], _ moduleKey: String, source: String) throws -> T? {
        for (pattern, value) in patterns {
            let regex: Regex<AnyRegexOutput>
            do {
                regex = try Regex("(.*\\.)?(\(pattern))")
            } catch {
                throw LoRAMixerError.format("\(source): pattern '\(pattern)' is not a valid regular expression")
            }
            if (try? regex.wholeMatch(in: moduleKey)) != nil { return value }
        }
        return nil
    }
}
