import LoRAMixer

/// What `lmx inspect` prints: named fields and tables, rendered as aligned text or as one JSON
/// object (`kind`, `path`, then each field and table under its key).
struct InspectReport {
    struct Field {
        let key: String
        let json: JSONValue
        let text: String
    }

    struct Table {
        let key: String
        let title: String
        let headers: [String]
        /// Columns aligned right (numbers).
        let rightAligned: Set<Int>
        let rows: [[String]]
        let json: JSONValue
    }

    enum Block {
        case fields([Field])
        case table(Table)
    }

    let kind: String
    let path: String
    var blocks: [Block] = []

    /// Appends fields; consecutive field groups merge so their labels align.
    mutating func fields(_ fields: [Field]) {
        if case .fields(let previous)? = blocks.last {
            blocks[blocks.count - 1] = .fields(previous + fields)
        } else {
            blocks.append(.fields(fields))
        }
    }
    mutating func table(_ table: Table) { blocks.append(.table(table)) }

    func renderText() -> String {
        var lines = ["\(kind): \(path)"]
        for (index, block) in blocks.enumerated() {
            switch block {
            case .fields(let fields):
                if index > 0, case .table = blocks[index - 1] { lines.append("") }
                let width = fields.map(\.key.count).max() ?? 0
                for field in fields {
                    let label = field.key + ":" + String(repeating: " ", count: width - field.key.count)
                    let value = field.text.split(separator: "\n", omittingEmptySubsequences: false)
                    lines.append("  \(label) \(value.first ?? "")")
                    lines += value.dropFirst().map { String(repeating: " ", count: width + 4) + $0 }
                }
            case .table(let table):
                lines.append("")
                lines.append("\(table.title):")
                guard !table.rows.isEmpty else {
                    lines.append("  (none)")
                    continue
                }
                let all = [table.headers] + table.rows
                let widths = table.headers.indices.map { column in all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
                for row in all {
                    let cells = row.indices.map { column -> String in
                        let pad = String(repeating: " ", count: widths[column] - row[column].count)
                        return table.rightAligned.contains(column) ? pad + row[column] : row[column] + pad
                    }
                    lines.append("  " + cells.joined(separator: "  ").trimmingTrailingSpaces())
                }
            }
        }
        return lines.joined(separator: "\n")
    }

    func renderJSON() -> JSONValue {
        var object: JSONObject = ["kind": .string(kind), "path": .string(path)]
        for block in blocks {
            switch block {
            case .fields(let fields): for field in fields { object[field.key] = field.json }
            case .table(let table): object[table.key] = table.json
            }
        }
        return .object(object)
    }
}

extension InspectReport.Field {
    init(_ key: String, _ value: Int) { self.init(key: key, json: JSONValue(value), text: String(value)) }
    init(_ key: String, _ value: String) { self.init(key: key, json: .string(value), text: value) }
    init(_ key: String, _ value: Bool) { self.init(key: key, json: .bool(value), text: value ? "yes" : "no") }
    init(_ key: String, _ value: Double) { self.init(key: key, json: JSONValue(value), text: formatNumber(value)) }
    init(_ key: String, _ value: Float) { self.init(key: key, json: jsonNumber(value), text: formatNumber(value)) }
    init(_ key: String, json: JSONValue) { self.init(key: key, json: json, text: describe(json)) }
}

extension StringProtocol {
    func trimmingTrailingSpaces() -> String {
        var text = String(self)
        while text.last == " " { text.removeLast() }
        return text
    }
}

/// A JSON value as short readable text: strings bare, arrays comma-separated, objects `k: v`.
func describe(_ value: JSONValue) -> String {
    switch value {
    case .null: return "none"
    case .bool(let flag): return flag ? "yes" : "no"
    case .number(let text): return text
    case .string(let text): return text
    case .array(let elements): return elements.isEmpty ? "[]" : elements.map(describe).joined(separator: ", ")
    case .object(let object):
        return object.count == 0 ? "{}" : object.entries.map { "\($0.key): \(describe($0.value))" }.joined(separator: ", ")
    }
}

/// Integral values without a fraction (10000, not 10000.0); others in shortest round-trip form.
func formatNumber<T: BinaryFloatingPoint & CustomStringConvertible>(_ value: T) -> String {
    if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
    return value.description
}

/// 363864 -> "363,864".
func groupedDigits(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
        out.append(digit)
    }
    return value < 0 ? "-" + out : out
}

/// 363864 -> "363,864 bytes (355.3 KiB)".
func byteSize(_ bytes: Int) -> String {
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = -1
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    guard unit >= 0 else { return "\(groupedDigits(bytes)) bytes" }
    let tenths = (value * 10).rounded() / 10
    return "\(groupedDigits(bytes)) bytes (\(formatNumber(tenths)) \(units[unit]))"
}

/// "[3, 64]"; "[]" for a scalar.
func shapeText(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
