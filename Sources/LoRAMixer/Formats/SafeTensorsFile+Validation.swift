/// The safetensors layout rules (docs/ARCHITECTURE.md#safetensors), checked once at open time: an 8-byte
/// little-endian header length N with 0 < N <= `maximumHeaderLength`, a JSON object header, and
/// tensors whose data exactly tiles the data section that starts at 8 + N. Every number in the
/// header is file-provided, so all arithmetic on it is overflow-checked.
extension SafeTensorsFile {
    /// The reference implementation's limit; it keeps a corrupt length from allocating gigabytes.
    public static let maximumHeaderLength = 100_000_000

    struct Header {
        var metadata: [String: String] = [:]
        /// In header order.
        var tensors: [TensorInfo] = []
    }

    static func readHeader(_ file: UnsafeRawBufferPointer, path: String) throws -> Header {
        guard file.count >= 8 else {
            throw LoRAMixerError.format("\(path): file is \(file.count) bytes, expected at least 8")
        }
        let declaredLength = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
        guard declaredLength > 0 else { throw LoRAMixerError.format("\(path): header length is 0") }
        guard declaredLength <= UInt64(maximumHeaderLength) else {
            throw LoRAMixerError.format(
                "\(path): header length \(declaredLength) exceeds the limit of \(maximumHeaderLength) bytes")
        }
        let headerLength = Int(declaredLength)
        guard headerLength <= file.count - 8 else {
            throw LoRAMixerError.format(
                "\(path): header length \(headerLength) runs past the end of the file (\(file.count) bytes)")
        }
        let dataStart = 8 + headerLength
        let dataSize = file.count - dataStart

        let json = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: file[8..<dataStart]), context: path)
        guard let object = json.object else {
            throw LoRAMixerError.format("\(path): header is a JSON \(json.kindName), expected an object")
        }

        var header = Header()
        var ranges: [(name: String, offsets: Range<Int>)] = []
        for (name, entry) in object.entries {
            if name == "__metadata__" {
                header.metadata = try readMetadata(entry, path: path)
                continue
            }
            let (info, offsets) = try readTensor(name, entry, dataStart: dataStart, dataSize: dataSize, path: path)
            header.tensors.append(info)
            ranges.append((name, offsets))
        }
        try checkTiling(ranges, dataSize: dataSize, path: path)
        return header
    }

    private static func readMetadata(_ entry: JSONValue, path: String) throws -> [String: String] {
        guard let object = entry.object else {
            throw LoRAMixerError.format("\(path): __metadata__ is a JSON \(entry.kindName), expected an object")
        }
        var metadata: [String: String] = [:]
        for (key, value) in object.entries {
            guard let text = value.string else {
                throw LoRAMixerError.format(
                    "\(path): __metadata__ value for '\(key)' is a JSON \(value.kindName), expected a string")
            }
            metadata[key] = text
        }
        return metadata
    }

    /// Decodes one tensor entry; returns its info and its offsets relative to the data section.
    private static func readTensor(
        _ name: String, _ entry: JSONValue, dataStart: Int, dataSize: Int, path: String
    ) throws -> (TensorInfo, Range<Int>) {
        let context = "\(path): tensor '\(name)'"
        guard let fields = entry.object else {
            throw LoRAMixerError.format("\(context) is a JSON \(entry.kindName), expected an object")
        }
        guard let dtypeText = fields["dtype"]?.string else {
            throw LoRAMixerError.format("\(context) has no string 'dtype'")
        }
        guard let dtype = DType(rawValue: dtypeText) else {
            throw LoRAMixerError.format("\(context) has unknown dtype '\(dtypeText)'")
        }
        let shape = try readIntegers(fields["shape"], field: "shape", count: nil, context: context)
        let offsets = try readIntegers(fields["data_offsets"], field: "data_offsets", count: 2, context: context)
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else {
            throw LoRAMixerError.format("\(context) has data_offsets [\(begin), \(end)] with begin after end")
        }
        guard end <= dataSize else {
            throw LoRAMixerError.format(
                "\(context) data [\(begin), \(end)) lies outside the data section (\(dataSize) bytes)")
        }

        let elementCount = try checkedProduct(shape, "\(context) shape")
        let (byteCount, overflow) = elementCount.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, byteCount == end - begin else {
            let expected = overflow ? "more than \(Int.max)" : "\(byteCount)"
            throw LoRAMixerError.format(
                "\(context) is \(dtype.rawValue) \(shape) = \(expected) bytes, but data_offsets [\(begin), \(end)) span \(end - begin) bytes")
        }
        let info = TensorInfo(
            name: name, dtype: dtype, shape: shape,
            byteRange: (dataStart + begin)..<(dataStart + end), elementCount: elementCount)
        return (info, begin..<end)
    }

    /// Reads an array of non-negative integers (a shape or data_offsets), exactly `count` long
    /// when given.
    private static func readIntegers(_ value: JSONValue?, field: String, count: Int?, context: String) throws -> [Int] {
        guard let elements = value?.array else {
            throw LoRAMixerError.format("\(context) has no array '\(field)'")
        }
        if let count, elements.count != count {
            throw LoRAMixerError.format("\(context) has \(elements.count) '\(field)' values, expected \(count)")
        }
        return try elements.map { element in
            guard let integer = element.int, integer >= 0 else {
                throw LoRAMixerError.format(
                    "\(context) has '\(field)' value \(element.serialized()), expected a non-negative integer")
            }
            return integer
        }
    }

    /// Sorted by begin, each tensor must start where the previous one ended, and the last must
    /// end at the data section's end: no overlaps, no gaps, no trailing bytes. Empty tensors may
    /// share an offset with their neighbour, as the reference implementation allows.
    private static func checkTiling(_ ranges: [(name: String, offsets: Range<Int>)], dataSize: Int, path: String) throws {
        let sorted = ranges.sorted {
            ($0.offsets.lowerBound, $0.offsets.upperBound) < ($1.offsets.lowerBound, $1.offsets.upperBound)
        }
        var cursor = 0
        var previous: (name: String, offsets: Range<Int>)? = nil
        for range in sorted {
            if range.offsets.lowerBound < cursor, let previous {
                throw LoRAMixerError.format(
                    "\(path): tensor '\(range.name)' data \(describe(range.offsets)) overlaps tensor '\(previous.name)' data \(describe(previous.offsets))")
            }
            if range.offsets.lowerBound > cursor {
                throw LoRAMixerError.format(
                    "\(path): data bytes \(describe(cursor..<range.offsets.lowerBound)) before tensor '\(range.name)' belong to no tensor")
            }
            cursor = range.offsets.upperBound
            previous = range
        }
        guard cursor == dataSize else {
            throw LoRAMixerError.format(
                "\(path): data bytes \(describe(cursor..<dataSize)) after the last tensor belong to no tensor (data section is \(dataSize) bytes)")
        }
    }

    private static func describe(_ range: Range<Int>) -> String { "[\(range.lowerBound), \(range.upperBound))" }
}
