import ArgumentParser

/// Why a command-line value did not parse; argument-parser prefixes it with the option and value.
struct ArgumentValueError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A comma-separated list of token ids, e.g. `1,2,3`; every entry a non-negative 32-bit integer.
/// Whether an id is below the model's vocabulary size is checked once the model is loaded.
struct TokenList: Sendable {
    let ids: [Int32]

    /// With `blanksSeparate`, spaces, tabs and newlines separate ids too (`1 2 3`, as `lmx
    /// tokenize` prints them); runs of blanks count as one separator.
    @Sendable static func parse(_ text: String, blanksSeparate: Bool) throws -> TokenList {
        guard blanksSeparate else { return try parse(text) }
        var parts: [String] = []
        var current = ""
        var afterBlank = false
        for character in text.trimmingBlanks().split(whereSeparator: \.isNewline).joined(separator: " ") {
            if character == " " || character == "\t" {
                afterBlank = true
                continue
            }
            if afterBlank && character != "," && !current.trimmingBlanks().isEmpty {
                parts.append(current)
                current = ""
            }
            afterBlank = false
            if character == "," {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return try parse(parts.joined(separator: ","))
    }

    @Sendable static func parse(_ text: String) throws -> TokenList {
        guard text.contains(where: { !$0.isWhitespace }) else {
            throw ArgumentValueError("expected comma-separated token ids, e.g. 1,2,3")
        }
        let ids = try text.split(separator: ",", omittingEmptySubsequences: false).enumerated().map { index, part in
            let entry = part.trimmingBlanks()
            let at = "at position \(index) (0-based)"
            guard !entry.isEmpty else { throw ArgumentValueError("the entry \(at) is empty") }
            guard let value = Int(entry) else { throw ArgumentValueError("'\(entry)' \(at) is not an integer") }
            guard value >= 0 else { throw ArgumentValueError("token id \(value) \(at) is negative") }
            guard let id = Int32(exactly: value) else { throw ArgumentValueError("token id \(value) \(at) is too large") }
            return id
        }
        return TokenList(ids: ids)
    }
}

/// `NAME=DIR`: a PEFT LoRA folder loaded as the expert NAME.
struct ExpertSpec: Sendable {
    let name: String
    let directory: String

    @Sendable static func parse(_ text: String) throws -> ExpertSpec {
        guard let equals = text.firstIndex(of: "=") else {
            throw ArgumentValueError("expected NAME=DIR (an expert name and a PEFT adapter folder)")
        }
        let name = String(text[..<equals])
        let directory = String(text[text.index(after: equals)...])
        guard !name.isEmpty else { throw ArgumentValueError("the expert name before '=' is empty") }
        guard !directory.isEmpty else { throw ArgumentValueError("the adapter folder after '=' is empty") }
        return ExpertSpec(name: name, directory: directory)
    }
}

/// `NAME=W[,NAME=W...]`: one fixed gate per named expert, in the order given.
struct FixedWeights: Sendable {
    let entries: [(name: String, weight: Float)]

    @Sendable static func parse(_ text: String) throws -> FixedWeights {
        var entries: [(name: String, weight: Float)] = []
        for (index, part) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let entry = part.trimmingBlanks()
            guard let equals = entry.firstIndex(of: "=") else {
                throw ArgumentValueError("'\(entry)' at position \(index) (0-based) is not NAME=WEIGHT")
            }
            let name = String(entry[..<equals])
            let weightText = String(entry[entry.index(after: equals)...])
            guard !name.isEmpty else { throw ArgumentValueError("'\(entry)' at position \(index) (0-based) has no expert name") }
            guard let weight = Float(weightText), weight.isFinite else {
                throw ArgumentValueError("weight '\(weightText)' of expert '\(name)' is not a finite number")
            }
            guard !entries.contains(where: { $0.name == name }) else {
                throw ArgumentValueError("expert '\(name)' is given twice")
            }
            entries.append((name, weight))
        }
        return FixedWeights(entries: entries)
    }
}
