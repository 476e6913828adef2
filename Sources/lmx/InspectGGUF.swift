import Glibc
import LoRAMixer

/// `lmx inspect FILE.gguf`: the GGUF header, every metadata entry in file order (long strings and
/// arrays abbreviated in text; in JSON arrays of more than `jsonArrayLimit` items keep their first
/// `shownItems` with `truncated: true`), and the tensor infos (name, ggml type, dimensions in ggml
/// order, bytes, offset).
extension InspectCommand {
    static let shownItems = 8
    static let jsonArrayLimit = 64
    static let shownStringLength = 80

    /// A `.gguf` name, or a file that starts with the GGUF magic.
    static func isGGUF(_ path: String) -> Bool {
        if path.hasSuffix(".gguf") { return true }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var magic = [UInt8](repeating: 0, count: 4)
        let count = magic.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, 4) }
        return count == 4 && magic == Array("GGUF".utf8)
    }

    static func ggufReport(_ path: String, tensorTable: Bool) throws -> InspectReport {
        let file = try GGUFFile(path: path)
        var report = InspectReport(kind: "GGUF", path: path)
        report.fields([
            .init("version", Int(file.version)),
            .init("architecture", (try? file.string("general.architecture")) ?? "none"),
            .init("alignment", file.alignment),
            .init("data_offset", file.dataOffset),
        ])
        report.table(InspectReport.Table(
            key: "metadata", title: "metadata (\(file.metadata.count))", headers: ["key", "type", "value"],
            rightAligned: [],
            rows: file.metadata.map { [$0.key, $0.value.typeDescription, ggufText($0.value)] },
            json: .array(file.metadata.map { entry in
                var object: JSONObject = ["key": .string(entry.key), "type": .string(entry.value.typeDescription)]
                object["value"] = ggufJSON(entry.value)
                if let elements = entry.value.array {
                    object["count"] = JSONValue(elements.count)
                    if elements.count > jsonArrayLimit { object["truncated"] = .bool(true) }
                }
                return .object(object)
            })))

        let tensors = file.tensors
        if tensorTable {
            report.table(InspectReport.Table(
                key: "tensors", title: "tensors (\(tensors.count); dims in ggml order, fastest first)",
                headers: ["name", "type", "dims", "bytes", "offset"], rightAligned: [3, 4],
                rows: tensors.map { tensor in
                    [tensor.name, tensor.type.name, shapeText(tensor.dimensions),
                     tensor.byteRange.map { groupedDigits($0.count) } ?? "?", groupedDigits(tensor.byteRange?.lowerBound ?? file.dataOffset + tensor.offset)]
                },
                json: .array(tensors.map { tensor in
                    .object(["name": .string(tensor.name), "type": .string(tensor.type.name),
                             "type_id": JSONValue(Int(tensor.type.id)),
                             "dimensions": .array(tensor.dimensions.map(JSONValue.init)),
                             "shape": .array(tensor.shape.map(JSONValue.init)),
                             "bytes": tensor.byteRange.map { JSONValue($0.count) } ?? .null,
                             "offset": JSONValue(file.dataOffset + tensor.offset)])
                })))
        }
        var byType: [(type: String, count: Int, bytes: Int)] = []
        for tensor in tensors {
            let bytes = tensor.byteRange?.count ?? 0
            if let index = byType.firstIndex(where: { $0.type == tensor.type.name }) {
                byType[index].count += 1
                byType[index].bytes += bytes
            } else {
                byType.append((tensor.type.name, 1, bytes))
            }
        }
        let bytes = byType.reduce(0) { $0 + $1.bytes }
        let parameters = tensors.reduce(0) { $0 &+ $1.elementCount }
        let typeWidth = byType.map(\.type.count).max() ?? 0
        report.fields([
            InspectReport.Field(key: "tensor_count", json: JSONValue(tensors.count), text: groupedDigits(tensors.count)),
            InspectReport.Field(key: "tensor_bytes", json: JSONValue(bytes), text: byteSize(bytes)),
            InspectReport.Field(key: "parameters", json: JSONValue(parameters), text: groupedDigits(parameters)),
            InspectReport.Field(
                key: "by_type",
                json: .object(JSONObject(byType.map { ($0.type, JSONValue.object(["tensors": JSONValue($0.count), "bytes": JSONValue($0.bytes)])) })),
                text: byType.isEmpty ? "none" : byType.map { entry in
                    entry.type + String(repeating: " ", count: typeWidth - entry.type.count)
                        + "  \(entry.count) tensors, \(byteSize(entry.bytes))"
                }.joined(separator: "\n")),
        ])
        return report
    }

    /// One line: strings quoted with control characters escaped and cut at `shownStringLength`
    /// characters; arrays as their first `shownItems` items and the count.
    static func ggufText(_ value: GGUFValue) -> String {
        switch value {
        case .string(let text):
            var escaped = ""
            for (index, character) in text.enumerated() {
                if index == shownStringLength {
                    escaped += "…"
                    break
                }
                switch character {
                case "\n": escaped += "\\n"
                case "\t": escaped += "\\t"
                case "\r": escaped += "\\r"
                case "\"": escaped += "\\\""
                default: escaped.append(character)
                }
            }
            let count = text.utf8.count
            return "\"\(escaped)\"" + (text.count > shownStringLength ? " (\(groupedDigits(count)) bytes)" : "")
        case .array(_, let elements):
            let shown = elements.prefix(shownItems).map(ggufText).joined(separator: ", ")
            let more = elements.count > shownItems ? ", …" : ""
            return "[\(shown)\(more)]" + (elements.count > shownItems ? " (\(groupedDigits(elements.count)) items)" : "")
        case .bool(let flag): return flag ? "true" : "false"
        case .float32(let number): return number.description
        case .float64(let number): return number.description
        case .uint64(let number): return String(number)
        case .int64(let number): return String(number)
        default: return value.int.map(String.init) ?? "?"
        }
    }

    static func ggufJSON(_ value: GGUFValue) -> JSONValue {
        switch value {
        case .string(let text): return .string(text)
        case .bool(let flag): return .bool(flag)
        case .float32(let number): return jsonNumber(number)
        case .float64(let number): return JSONValue(number)
        case .uint64(let number): return .number(String(number))
        case .int64(let number): return .number(String(number))
        case .array(_, let elements):
            let kept = elements.count > jsonArrayLimit ? Array(elements.prefix(shownItems)) : elements
            return .array(kept.map { ggufJSON($0) })
        default: return value.int.map(JSONValue.init) ?? .null
        }
    }
}
