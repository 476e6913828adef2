import Glibc

/// The parts of PEFT's `adapter_config.json` that decide a LoRA's shape and scale. Reading is
/// lenient (so tools can describe any LoRA config); `checkSupported()` says whether loramixer can
/// apply it.
public struct PEFTAdapterConfig: Sendable {
    public let source: String
    public let rank: Int
    public let alpha: Double
    public let useRSLoRA: Bool
    public let rankPattern: [(pattern: String, value: Int)]
    public let alphaPattern: [(pattern: String, value: Double)]
    private let unsupported: String?

    public init(contentsOf path: String) throws {
        try self.init(json: JSONParser.parse(SystemFiles.read(path), context: path), source: path)
    }

    public init(json: JSONValue, source: String) throws {
        guard let root = json.object else { throw LoRAMixerError.format("\(source): top level is not a JSON object") }
        let fields = ConfigFields(object: root, source: source)
        self.source = source
        rank = try fields.positiveInt("r")
        // PEFT's LoraConfig default when the file leaves it out.
        alpha = try fields.optionalDouble("lora_alpha") ?? 8
        useRSLoRA = try fields.optionalBool("use_rslora") ?? false
        rankPattern = try Self.pattern("rank_pattern", fields: fields) { value in value.int.flatMap { $0 > 0 ? $0 : nil } }
        alphaPattern = try Self.pattern("alpha_pattern", fields: fields) { value in value.double.flatMap { $0.isFinite ? $0 : nil } }
        unsupported = try Self.unsupportedFeature(root, fields)
    }

    /// Throws, saying why, when the adapter uses a PEFT feature loramixer cannot apply.
    public func checkSupported() throws {
        if let unsupported { throw LoRAMixerError.format("\(source): \(unsupported)") }
    }

    private static func unsupportedFeature(_ root: JSONObject, _ fields: ConfigFields) throws -> String? {
        if let type = try fields.optionalString("peft_type"), type != "LORA" {
            return "peft_type '\(type)' is not supported (expected 'LORA')"
        }
        if try fields.optionalBool("use_dora") == true {
            return "use_dora = true (DoRA) is not supported"
        }
        if try fields.optionalBool("fan_in_fan_out") == true {
            return "fan_in_fan_out = true is for GPT-2 style Conv1D layers; llama-family projections are nn.Linear"
        }
        if let bias = try fields.optionalString("bias"), bias != "none" {
            return "bias = '\(bias)' trains base-model biases, which loramixer does not load (expected 'none')"
        }
        if let saved = root["modules_to_save"]?.array, !saved.isEmpty {
            return "modules_to_save replaces whole base modules (\(saved.compactMap(\.string).joined(separator: ", "))), which loramixer does not support"
        }
        return nil
    }

    /// r for the module named `moduleKey` (e.g. `model.layers.0.self_attn.v_proj`).
    public func rank(for moduleKey: String) throws -> Int {
        try Self.match(rankPattern, moduleKey, source: source) ?? rank
    }

    /// lora_alpha for the module named `moduleKey`.
    public func alpha(for moduleKey: String) throws -> Double {
        try Self.match(alphaPattern, moduleKey, source: source) ?? alpha
    }

    /// The delta's scale for a module with rank `rank`: alpha / r, or alpha / sqrt(r) with rsLoRA.
    public func scale(for moduleKey: String, rank: Int) throws -> Float {
        LoRAWeights.scale(alpha: try alpha(for: moduleKey), rank: rank, rsLoRA: useRSLoRA)
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
