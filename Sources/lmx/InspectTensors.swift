import LoRAMixer

/// The tensor table and totals every inspect report ends with.
extension InspectReport {
    mutating func tensors(_ infos: [TensorInfo], table: Bool) {
        if table {
            self.table(Table(
                key: "tensors", title: "tensors (\(infos.count))", headers: ["name", "dtype", "shape", "bytes"],
                rightAligned: [3],
                rows: infos.map { [$0.name, $0.dtype.rawValue, shapeText($0.shape), groupedDigits($0.byteRange.count)] },
                json: .array(infos.map { info in
                    .object(["name": .string(info.name), "dtype": .string(info.dtype.rawValue),
                             "shape": .array(info.shape.map(JSONValue.init)), "bytes": JSONValue(info.byteRange.count)])
                })))
        }
        var byType: [(dtype: DType, count: Int, bytes: Int)] = []
        for info in infos {
            if let index = byType.firstIndex(where: { $0.dtype == info.dtype }) {
                byType[index].count += 1
                byType[index].bytes += info.byteRange.count
            } else {
                byType.append((info.dtype, 1, info.byteRange.count))
            }
        }
        let bytes = infos.reduce(0) { $0 + $1.byteRange.count }
        let typeWidth = byType.map(\.dtype.rawValue.count).max() ?? 0
        fields([
            Field(key: "tensor_count", json: JSONValue(infos.count), text: groupedDigits(infos.count)),
            Field(key: "tensor_bytes", json: JSONValue(bytes), text: byteSize(bytes)),
            Field(key: "parameters", json: JSONValue(infos.reduce(0) { $0 + $1.elementCount }),
                  text: groupedDigits(infos.reduce(0) { $0 + $1.elementCount })),
            Field(key: "by_dtype",
                  json: .object(JSONObject(byType.map { ($0.dtype.rawValue, JSONValue.object(["tensors": JSONValue($0.count), "bytes": JSONValue($0.bytes)])) })),
                  text: byType.isEmpty ? "none" : byType.map { entry in
                      entry.dtype.rawValue + String(repeating: " ", count: typeWidth - entry.dtype.rawValue.count)
                          + "  \(entry.count) tensors, \(byteSize(entry.bytes))"
                  }.joined(separator: "\n")),
        ])
    }
}

extension JSONObject {
    init(_ members: [(String, JSONValue)]) {
        self.init()
        for (key, value) in members { self[key] = value }
    }
}
