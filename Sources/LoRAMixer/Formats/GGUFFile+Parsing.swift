/// The GGUF layout (gguf v2/v3, little-endian): magic `GGUF`, uint32 version, uint64 tensor count,
/// uint64 metadata count, the metadata entries (string key, uint32 value type, value), then the
/// tensor infos (string name, uint32 n_dims, n_dims × uint64 dimensions, uint32 ggml type, uint64
/// offset). A string is a uint64 byte length and UTF-8 bytes. Every count and length is
/// file-provided, so each is bounded by the bytes left before anything is allocated for it.
extension GGUFFile {
    /// No string (a key, a value, a tensor name) may be longer, whatever the file size.
    public static let maximumStringLength = 1 << 30
    /// Arrays of arrays nest at most this deep (an array of strings is depth 1).
    public static let maximumArrayDepth = 8
    /// ggml's GGML_MAX_DIMS.
    public static let maximumDimensions = 4

    struct Contents {
        var version: UInt32 = 0
        var metadata: [GGUFMetadataEntry] = []
        var tensors: [GGUFTensorInfo] = []
        var alignment = GGUFFile.defaultAlignment
        var dataOffset = 0
    }

    static func read(_ file: UnsafeRawBufferPointer, path: String) throws -> Contents {
        var cursor = GGUFCursor(file, path: path)
        var contents = Contents()
        let magic = try cursor.slice(4, "magic")
        guard magic.elementsEqual("GGUF".utf8) else {
            throw LoRAMixerError.format(
                "\(path): not a GGUF file: magic is \(magic.map { hex($0) }.joined(separator: " ")), expected 47 47 55 46 (\"GGUF\")")
        }
        let version = try cursor.uint32("version")
        if version.byteSwapped == 2 || version.byteSwapped == 3 {
            throw LoRAMixerError.format(
                "\(path): a big-endian GGUF file (version \(version.byteSwapped) byte-swapped); only little-endian files are supported")
        }
        guard version == 2 || version == 3 else {
            throw LoRAMixerError.format("\(path): GGUF version \(version) is not supported (only versions 2 and 3)")
        }
        contents.version = version

        let tensorCount = try cursor.uint64("tensor count")
        let entryCount = try cursor.uint64("metadata count")
        // Each entry takes at least a key length, a type and a one-byte value; each tensor info at
        // least a name length, n_dims, type and offset.
        let minimumEntry = 8 + 4 + 1, minimumTensor = 8 + 4 + 4 + 8
        guard entryCount <= UInt64(cursor.remaining / minimumEntry) else {
            throw LoRAMixerError.format(
                "\(path): metadata count \(entryCount) cannot fit in the \(cursor.remaining) bytes left (at least \(minimumEntry) bytes each)")
        }
        guard tensorCount <= UInt64(cursor.remaining / minimumTensor) else {
            throw LoRAMixerError.format(
                "\(path): tensor count \(tensorCount) cannot fit in the \(cursor.remaining) bytes left (at least \(minimumTensor) bytes each)")
        }

        var keys = Set<String>()
        for index in 0..<Int(entryCount) {
            let key = try readString(&cursor, "metadata key #\(index)")
            guard keys.insert(key).inserted else {
                throw LoRAMixerError.format("\(path): metadata key '\(key)' appears twice")
            }
            let rawType = try cursor.uint32("metadata '\(key)' value type")
            let value = try readValue(&cursor, type: try valueType(rawType, "metadata '\(key)'", path: path),
                                      context: "metadata '\(key)'", depth: 0)
            contents.metadata.append(GGUFMetadataEntry(key: key, value: value))
        }
        contents.alignment = try alignment(contents.metadata, path: path)

        var names = Set<String>()
        var unplaced: [(name: String, type: GGMLType, dimensions: [Int], elementCount: Int, offset: Int)] = []
        for index in 0..<Int(tensorCount) {
            let name = try readString(&cursor, "tensor #\(index) name")
            guard names.insert(name).inserted else {
                throw LoRAMixerError.format("\(path): tensor '\(name)' appears twice")
            }
            let context = "tensor '\(name)'"
            let dimensionCount = try cursor.uint32("\(context) n_dims")
            guard dimensionCount <= UInt32(maximumDimensions) else {
                throw LoRAMixerError.format("\(path): \(context) has \(dimensionCount) dimensions, at most \(maximumDimensions) allowed")
            }
            var dimensions: [Int] = []
            for axis in 0..<Int(dimensionCount) {
                let dimension = try cursor.uint64("\(context) dimension \(axis)")
                guard let value = Int(exactly: dimension), value <= Int(Int64.max) else {
                    throw LoRAMixerError.format("\(path): \(context) dimension \(axis) is \(dimension), too large")
                }
                dimensions.append(value)
            }
            let elementCount = try checkedProduct(dimensions, "\(path): \(context) dimensions")
            let type = GGMLType(id: try cursor.uint32("\(context) type"))
            let offset = try cursor.uint64("\(context) offset")
            guard let stored = Int(exactly: offset) else {
                throw LoRAMixerError.format("\(path): \(context) offset \(offset) is too large")
            }
            unplaced.append((name, type, dimensions, elementCount, stored))
        }

        let (dataOffset, overflow) = cursor.offset.addingReportingOverflow(
            (contents.alignment - cursor.offset % contents.alignment) % contents.alignment)
        guard !overflow else { throw LoRAMixerError.format("\(path): data section offset overflows") }
        contents.dataOffset = dataOffset
        contents.tensors = try unplaced.map {
            try place($0.name, $0.type, $0.dimensions, $0.elementCount, $0.offset,
                      dataOffset: dataOffset, alignment: contents.alignment, fileSize: file.count, path: path)
        }
        try checkOverlaps(contents.tensors, path: path)
        return contents
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }

    static func valueType(_ raw: UInt32, _ context: String, path: String) throws -> GGUFValueType {
        guard let type = GGUFValueType(rawValue: raw) else {
            throw LoRAMixerError.format("\(path): \(context) has unknown value type \(raw)")
        }
        return type
    }

    /// A uint64 length and that many bytes of valid UTF-8.
    static func readString(_ cursor: inout GGUFCursor, _ context: @autoclosure () -> String) throws -> String {
        let length = try cursor.uint64("\(context()) length")
        guard length <= UInt64(maximumStringLength) else {
            throw LoRAMixerError.format(
                "\(cursor.path): \(context()) length \(length) exceeds the limit of \(maximumStringLength) bytes")
        }
        guard length <= UInt64(cursor.remaining) else {
            throw LoRAMixerError.format(
                "\(cursor.path): \(context()) length \(length) runs past the end of the file (\(cursor.remaining) bytes left)")
        }
        let bytes = try cursor.slice(Int(length), context())
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw LoRAMixerError.format("\(cursor.path): \(context()) is not valid UTF-8")
        }
        return text
    }

    /// `context` names the value in errors ("metadata 'k'[3]"); built only when one is thrown, as a
    /// vocabulary array has hundreds of thousands of elements.
    static func readValue(
        _ cursor: inout GGUFCursor, type: GGUFValueType, context: @autoclosure () -> String, depth: Int
    ) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try cursor.uint8(context()))
        case .int8: return .int8(Int8(bitPattern: try cursor.uint8(context())))
        case .uint16: return .uint16(try cursor.uint16(context()))
        case .int16: return .int16(Int16(bitPattern: try cursor.uint16(context())))
        case .uint32: return .uint32(try cursor.uint32(context()))
        case .int32: return .int32(Int32(bitPattern: try cursor.uint32(context())))
        case .uint64: return .uint64(try cursor.uint64(context()))
        case .int64: return .int64(Int64(bitPattern: try cursor.uint64(context())))
        case .float32: return .float32(Float(bitPattern: try cursor.uint32(context())))
        case .float64: return .float64(Double(bitPattern: try cursor.uint64(context())))
        case .bool:
            let byte = try cursor.uint8(context())
            guard byte <= 1 else {
                throw LoRAMixerError.format("\(cursor.path): \(context()) is a bool stored as \(byte), expected 0 or 1")
            }
            return .bool(byte == 1)
        case .string: return .string(try readString(&cursor, context()))
        case .array:
            guard depth < maximumArrayDepth else {
                throw LoRAMixerError.format(
                    "\(cursor.path): \(context()) nests arrays deeper than the limit of \(maximumArrayDepth)")
            }
            let elementType = try valueType(try cursor.uint32("\(context()) array type"), "\(context()) array", path: cursor.path)
            let count = try cursor.uint64("\(context()) array count")
            let bound = cursor.remaining / elementType.minimumEncodedSize
            guard count <= UInt64(bound) else {
                throw LoRAMixerError.format(
                    "\(cursor.path): \(context()) array count \(count) cannot fit in the \(cursor.remaining) bytes left (\(elementType.name) elements take at least \(elementType.minimumEncodedSize) bytes)")
            }
            var elements: [GGUFValue] = []
            elements.reserveCapacity(Int(count))
            for index in 0..<Int(count) {
                elements.append(try readValue(&cursor, type: elementType, context: "\(context())[\(index)]", depth: depth + 1))
            }
            return .array(elementType, elements)
        }
    }
}
