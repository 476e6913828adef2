import Foundation
import XCTest
@testable import LoRAMixer

/// The GGUF container reader against `gguf.GGUFReader` (fixtures from tools/make_gguf_fixtures.py)
/// and against hand-made malformed files.
final class GGUFTests: TemporaryFolderTestCase {
    static let fixtures = ["vocab_only", "tensors", "tensors_align64"]

    // MARK: Helpers

    /// A GGUF file written field by field, for the malformed cases.
    struct Builder {
        var bytes: [UInt8] = []
        mutating func u8(_ value: UInt8) { bytes.append(value) }
        mutating func u32(_ value: UInt32) { bytes += withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        mutating func u64(_ value: UInt64) { bytes += withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        mutating func string(_ text: String) { raw(Array(text.utf8)) }
        mutating func raw(_ data: [UInt8]) {
            u64(UInt64(data.count))
            bytes += data
        }
        mutating func header(version: UInt32 = 3, tensors: UInt64 = 0, entries: UInt64 = 0) {
            bytes += Array("GGUF".utf8)
            u32(version)
            u64(tensors)
            u64(entries)
        }
        /// A key and a uint32 value.
        mutating func entry(_ key: String, uint32 value: UInt32) {
            string(key)
            u32(GGUFValueType.uint32.rawValue)
            u32(value)
        }
        mutating func tensor(_ name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0) {
            string(name)
            u32(UInt32(dims.count))
            for dim in dims { u64(dim) }
            u32(type)
            u64(offset)
        }
        /// Zero padding to `alignment`, then `count` data bytes.
        mutating func data(_ count: Int, alignment: Int = 32) {
            bytes += [UInt8](repeating: 0, count: (alignment - bytes.count % alignment) % alignment + count)
        }
    }

    private func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = "\(directory)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Asserts opening the bytes fails, in both load modes, with `kind` and a message containing the
    /// file name and every string in `contains`.
    private func assertRefused(
        _ builder: Builder, _ contains: String..., kind: LoRAMixerError.Kind = .format, line: UInt = #line
    ) throws {
        let path = try write("bad.gguf", builder.bytes)
        for mode in [LoadMode.mapped, .copied] {
            XCTAssertThrowsError(try GGUFFile(path: path, mode: mode), line: line) { error in
                assertError(error, kind, [path] + contains, line: line)
            }
        }
    }

    private func assertError(_ error: Error, _ kind: LoRAMixerError.Kind, _ contains: [String], line: UInt = #line) {
        guard let error = error as? LoRAMixerError else { return XCTFail("wrong error type \(error)", line: line) }
        XCTAssertEqual(error.kind, kind, error.message, line: line)
        for part in contains {
            XCTAssertTrue(error.message.contains(part), "'\(error.message)' lacks '\(part)'", line: line)
        }
    }

    private func oracle(_ fixture: String) throws -> JSONObject {
        let path = Fixtures.path("gguf", fixture + ".json")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let object = try JSONParser.parse(text, context: path).object else {
            throw LoRAMixerError.format("\(path): not an object")
        }
        return object
    }

    /// Compares a value with GGUFReader's JSON for it: scalars as numbers/strings/bools, arrays as
    /// {"element_type", "elements"}.
    private func assertEqual(_ value: GGUFValue, _ expected: JSONValue, _ context: String, line: UInt = #line) {
        switch value {
        case .array(let elementType, let elements):
            guard let object = expected.object, let items = object["elements"]?.array else {
                return XCTFail("\(context): expected \(expected.serialized()), got an array", line: line)
            }
            XCTAssertEqual(object["element_type"]?.string, elementType.name, context, line: line)
            XCTAssertEqual(elements.count, items.count, context, line: line)
            for (index, (element, item)) in zip(elements, items).enumerated() {
                assertEqual(element, item, "\(context)[\(index)]", line: line)
            }
        case .string(let text): XCTAssertEqual(text, expected.string, context, line: line)
        case .bool(let flag): XCTAssertEqual(flag, expected.bool, context, line: line)
        case .float32, .float64: XCTAssertEqual(value.double, expected.double, context, line: line)
        case .uint64(let number):
            // JSONValue.int is Int-sized; compare the literal text for values above Int.max.
            XCTAssertEqual(expected.serialized(), String(number), context, line: line)
        default: XCTAssertEqual(value.int, expected.int, context, line: line)
        }
    }

    // MARK: Fixtures vs GGUFReader

    func testFixturesMatchGGUFReader() throws {
        for fixture in Self.fixtures {
            let expected = try oracle(fixture)
            for mode in [LoadMode.mapped, .copied] {
                let file = try GGUFFile(path: Fixtures.path("gguf", fixture + ".gguf"), mode: mode)
                XCTAssertEqual(Int(file.version), expected["version"]?.int, fixture)
                XCTAssertEqual(file.alignment, expected["alignment"]?.int, fixture)
                XCTAssertEqual(file.dataOffset, expected["data_offset"]?.int, fixture)

                let entries = expected["metadata"]?.array ?? []
                XCTAssertEqual(file.metadata.map(\.key), entries.compactMap { $0.object?["key"]?.string }, fixture)
                for (entry, json) in zip(file.metadata, entries) {
                    let context = "\(fixture) \(entry.key)"
                    XCTAssertEqual(entry.value.type.name, json.object?["type"]?.string, context)
                    assertEqual(entry.value, json.object?["value"] ?? .null, context)
                    XCTAssertEqual(file.value(entry.key), entry.value, context)
                }

                let tensors = expected["tensors"]?.array ?? []
                XCTAssertEqual(file.tensors.map(\.name), tensors.compactMap { $0.object?["name"]?.string }, fixture)
                for (tensor, json) in zip(file.tensors, tensors) {
                    let context = "\(fixture) \(tensor.name)"
                    let object = json.object ?? [:]
                    XCTAssertEqual(tensor.type.name, object["type"]?.string, context)
                    XCTAssertEqual(Int(tensor.type.id), object["type_id"]?.int, context)
                    XCTAssertEqual(tensor.dimensions, object["dimensions"]?.array?.compactMap(\.int), context)
                    XCTAssertEqual(tensor.shape, tensor.dimensions.reversed(), context)
                    XCTAssertEqual(tensor.byteRange?.lowerBound, object["data_offset"]?.int, context)
                    XCTAssertEqual(tensor.byteRange?.count, object["n_bytes"]?.int, context)
                    XCTAssertEqual(tensor.byteRange?.lowerBound, file.dataOffset + tensor.offset, context)
                    XCTAssertEqual(file.tensor(tensor.name), tensor, context)
                }
            }
        }
    }

    func testTypedGetters() throws {
        let file = try GGUFFile(path: Fixtures.path("gguf", "vocab_only.gguf"))
        XCTAssertEqual(try file.string("tokenizer.ggml.model"), "llama")
        XCTAssertEqual(try file.strings("tokenizer.ggml.tokens")?.prefix(4), ["<unk>", "<s>", "</s>", "▁the"])
        XCTAssertEqual(try file.strings("tokenizer.ggml.tokens")?[7], "🙂")
        XCTAssertEqual(try file.floats("tokenizer.ggml.scores")?.prefix(4), [0, -1.5, -2.25, 3.125])
        XCTAssertEqual(try file.ints("tokenizer.ggml.token_type")?.prefix(3), [2, 3, 3])
        XCTAssertEqual(try file.uint32("tokenizer.ggml.bos_token_id"), 1)
        XCTAssertEqual(try file.int("tokenizer.ggml.eos_token_id"), 2)
        XCTAssertEqual(try file.bool("tokenizer.ggml.add_bos_token"), true)
        XCTAssertEqual(try file.bool("tokenizer.ggml.add_eos_token"), false)
        XCTAssertEqual(try file.int("test.i64"), Int(Int64.min))
        XCTAssertThrowsError(try file.int("test.u64")) { error in  // 2^64-1 does not fit Int
            assertError(error, .format, ["'test.u64' is uint64", "an integer within Int's range"])
        }
        XCTAssertEqual(file.value("test.u64"), .uint64(UInt64.max))
        XCTAssertEqual(try file.double("test.f32"), Double(Float(0.1)))
        XCTAssertEqual(try file.double("test.f64"), 0.1)
        XCTAssertThrowsError(try file.ints("test.u64_array")) { error in  // UInt64.max does not fit
            assertError(error, .format, ["'test.u64_array' is array[uint64]"])
        }
        XCTAssertEqual(try file.floats("test.f64_array"), [0.5, -0.25])
        XCTAssertEqual(try file.ints("test.i16_array"), [-1, 2, -3])
        XCTAssertEqual(file.value("test.nested")?.typeDescription, "array[array[int32]]")
        XCTAssertNil(try file.string("no.such.key"))
        XCTAssertTrue(file.tensors.isEmpty)
        XCTAssertThrowsError(try file.uint32("tokenizer.ggml.model")) { error in
            assertError(error, .format, ["'tokenizer.ggml.model'", "is string", "expected uint32"])
        }
        XCTAssertThrowsError(try file.strings("tokenizer.ggml.scores")) { error in
            assertError(error, .format, ["'tokenizer.ggml.scores'", "array[float32]", "expected array[string]"])
        }
        XCTAssertThrowsError(try file.uint32("test.i32")) { error in
            assertError(error, .format, ["'test.i32'", "is int32"])
        }
    }

    func testTensorBytes() throws {
        let file = try GGUFFile(path: Fixtures.path("gguf", "tensors.gguf"))
        XCTAssertEqual(try file.withTensorBytes("blk.0.scalar") { $0.loadUnaligned(as: Int32.self) }, 7)
        XCTAssertEqual(try file.withTensorBytes("blk.0.attn_q.weight") { $0.count }, 2 * 2 * 34)  // [64, 2]: 4 blocks
        XCTAssertEqual(try file.uint32("llama.block_count"), 1)
        XCTAssertThrowsError(try file.withTensorBytes("nope") { _ in 0 }) { error in
            assertError(error, .notFound, ["'nope'"])
        }
    }

    // MARK: Truncation

    /// Every prefix of every fixture either throws a format error or — only when it keeps all the
    /// metadata, tensor infos and tensor data — reads the same as the whole file. Parsed from memory
    /// (the same code path as a file) so all prefixes run quickly; never a crash.
    func testEveryTruncationThrows() throws {
        for fixture in Self.fixtures {
            let path = Fixtures.path("gguf", fixture + ".gguf")
            let whole = try GGUFFile(path: path)
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let needed = max(whole.tensors.compactMap(\.byteRange?.upperBound).max() ?? 0,
                             whole.dataOffset - whole.alignment + 1)
            for length in 0..<bytes.count {
                bytes.withUnsafeBytes { buffer in
                    do {
                        let contents = try GGUFFile.read(UnsafeRawBufferPointer(rebasing: buffer[0..<length]), path: path)
                        XCTAssertGreaterThanOrEqual(length, needed, "\(fixture) cut at \(length) parsed")
                        XCTAssertEqual(contents.metadata, whole.metadata)
                        XCTAssertEqual(contents.tensors, whole.tensors)
                    } catch let error as LoRAMixerError {
                        XCTAssertEqual(error.kind, .format, error.message)
                        XCTAssertTrue(error.message.hasPrefix(path), error.message)
                    } catch {
                        XCTFail("\(fixture) cut at \(length): \(error)")
                    }
                }
            }
        }
        // And as files: shorter than the 8-byte minimum, and cut inside the metadata.
        var builder = Builder()
        builder.bytes = Array("GGUF".utf8)
        try assertRefused(builder, "4 bytes, expected at least 8")
        let vocab = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("gguf", "vocab_only.gguf"))))
        builder.bytes = Array(vocab.prefix(100))
        try assertRefused(builder, "metadata count 29 cannot fit in the 76 bytes left")
    }

    /// Every single byte of every fixture set to 0x00, 0x80 and 0xff in turn: each copy either
    /// opens or throws a LoRAMixerError; none traps (counts, lengths, types, offsets all hostile).
    func testCorruptedBytesNeverCrash() throws {
        for fixture in Self.fixtures {
            let path = Fixtures.path("gguf", fixture + ".gguf")
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            for index in bytes.indices {
                let original = bytes[index]
                for value: UInt8 in [0x00, 0x80, 0xff] where value != original {
                    bytes[index] = value
                    bytes.withUnsafeBytes { buffer in
                        do {
                            _ = try GGUFFile.read(buffer, path: path)
                        } catch is LoRAMixerError {
                        } catch {
                            XCTFail("\(fixture) byte \(index) = \(value): \(error)")
                        }
                    }
                }
                bytes[index] = original
            }
        }
    }

    // MARK: Header

    func testMagicVersionAndEndianness() throws {
        var builder = Builder()
        builder.bytes = Array("GGML".utf8) + [3, 0, 0, 0] + [UInt8](repeating: 0, count: 16)
        try assertRefused(builder, "not a GGUF file", "47 47 4d 4c")
        for version: UInt32 in [1, 0, 4] {
            builder = Builder()
            builder.header(version: version)
            try assertRefused(builder, "GGUF version \(version) is not supported")
        }
        builder = Builder()
        builder.bytes = Array("GGUF".utf8) + [0, 0, 0, 3] + [UInt8](repeating: 0, count: 16)
        try assertRefused(builder, "big-endian", "only little-endian")
        builder = Builder()
        builder.header(version: 2)
        XCTAssertEqual(try GGUFFile(path: try write("v2.gguf", builder.bytes)).version, 2)
    }

    func testCountsBoundedByFileSize() throws {
        var builder = Builder()
        builder.header(entries: 1 << 60)
        try assertRefused(builder, "metadata count 1152921504606846976 cannot fit")
        builder = Builder()
        builder.header(tensors: UInt64.max)
        try assertRefused(builder, "tensor count 18446744073709551615 cannot fit")
    }

    // MARK: Metadata

    func testStringLimits() throws {
        var builder = Builder()
        builder.header(entries: 1)
        builder.u64(1 << 40)
        builder.bytes += [UInt8](repeating: 0x61, count: 64)
        try assertRefused(builder, "metadata key #0 length 1099511627776 exceeds the limit of 1073741824 bytes")
        builder = Builder()
        builder.header(entries: 1)
        builder.string("general.name")
        builder.u32(GGUFValueType.string.rawValue)
        builder.u64(1000)
        builder.bytes += Array("short".utf8)
        try assertRefused(builder, "metadata 'general.name' length 1000 runs past the end of the file")
    }

    func testArrayLimits() throws {
        var builder = Builder()
        builder.header(entries: 1)
        builder.string("tokenizer.ggml.tokens")
        builder.u32(GGUFValueType.array.rawValue)
        builder.u32(GGUFValueType.string.rawValue)
        builder.u64(1 << 50)
        builder.string("a")
        try assertRefused(builder, "metadata 'tokenizer.ggml.tokens' array count 1125899906842624 cannot fit",
                          "string elements take at least 8 bytes")

        // Nine levels of arrays: each an array of one array; the ninth is refused.
        builder = Builder()
        builder.header(entries: 1)
        builder.string("deep")
        builder.u32(GGUFValueType.array.rawValue)
        for _ in 0..<9 {
            builder.u32(GGUFValueType.array.rawValue)
            builder.u64(1)
        }
        builder.bytes += [UInt8](repeating: 0, count: 64)
        try assertRefused(builder, "metadata 'deep'[0][0][0][0][0][0][0][0] nests arrays deeper than the limit of 8")

        // Eight levels are fine.
        builder = Builder()
        builder.header(entries: 1)
        builder.string("deep")
        builder.u32(GGUFValueType.array.rawValue)
        for _ in 0..<7 {
            builder.u32(GGUFValueType.array.rawValue)
            builder.u64(1)
        }
        builder.u32(GGUFValueType.uint8.rawValue)
        builder.u64(1)
        builder.u8(42)
        let file = try GGUFFile(path: try write("deep.gguf", builder.bytes))
        XCTAssertEqual(file.value("deep")?.typeDescription,
                       "array[array[array[array[array[array[array[array[uint8]]]]]]]]")
    }

    func testDuplicateKeyUnknownTypeAndBool() throws {
        var builder = Builder()
        builder.header(entries: 2)
        builder.entry("general.alignment", uint32: 32)
        builder.entry("general.alignment", uint32: 64)
        try assertRefused(builder, "metadata key 'general.alignment' appears twice")
        builder = Builder()
        builder.header(entries: 1)
        builder.string("odd")
        builder.u32(13)
        builder.u32(0)
        try assertRefused(builder, "metadata 'odd' has unknown value type 13")
        builder = Builder()
        builder.header(entries: 1)
        builder.string("flag")
        builder.u32(GGUFValueType.bool.rawValue)
        builder.u8(2)
        try assertRefused(builder, "metadata 'flag' is a bool stored as 2")
    }

    func testInvalidUTF8IsRefusedNamingTheKey() throws {
        let invalid: [UInt8] = [0x61, 0xff, 0x62]
        var builder = Builder()
        builder.header(entries: 1)
        builder.raw(invalid)
        builder.u32(GGUFValueType.uint8.rawValue)
        builder.u8(0)
        try assertRefused(builder, "metadata key #0 is not valid UTF-8")

        builder = Builder()
        builder.header(entries: 1)
        builder.string("general.name")
        builder.u32(GGUFValueType.string.rawValue)
        builder.raw([0xc3])  // a truncated two-byte sequence
        try assertRefused(builder, "metadata 'general.name' is not valid UTF-8")

        builder = Builder()
        builder.header(entries: 1)
        builder.string("tokenizer.ggml.tokens")
        builder.u32(GGUFValueType.array.rawValue)
        builder.u32(GGUFValueType.string.rawValue)
        builder.u64(2)
        builder.string("ok")
        builder.raw([0xed, 0xa0, 0x80])  // an encoded surrogate
        try assertRefused(builder, "metadata 'tokenizer.ggml.tokens'[1] is not valid UTF-8")

        builder = Builder()
        builder.header(tensors: 1)
        builder.raw(invalid)
        builder.u32(1)
        builder.u64(1)
        builder.u32(0)
        builder.u64(0)
        builder.data(4)
        try assertRefused(builder, "tensor #0 name is not valid UTF-8")
    }

    // MARK: Alignment and tensors

    func testAlignmentMustBeAPowerOfTwoUInt32() throws {
        for value: UInt32 in [0, 48] {
            var builder = Builder()
            builder.header(entries: 1)
            builder.entry("general.alignment", uint32: value)
            try assertRefused(builder, "metadata 'general.alignment' is \(value), expected a power of two")
        }
        var builder = Builder()
        builder.header(entries: 1)
        builder.string("general.alignment")
        builder.u32(GGUFValueType.int32.rawValue)
        builder.u32(32)
        try assertRefused(builder, "metadata 'general.alignment' is int32, expected uint32")
    }

    /// One F32 tensor `a` [8] at offset 0 (32 bytes) and `b` with the given fields, data `size` bytes.
    private func twoTensors(b dims: [UInt64], type: UInt32 = 0, offset: UInt64, size: Int = 64, alignment: UInt32? = nil) -> Builder {
        var builder = Builder()
        builder.header(tensors: 2, entries: alignment == nil ? 0 : 1)
        if let alignment { builder.entry("general.alignment", uint32: alignment) }
        builder.tensor("a", dims: [8], offset: 0)
        builder.tensor("b", dims: dims, type: type, offset: offset)
        builder.data(size, alignment: Int(alignment ?? 32))
        return builder
    }

    func testTensorPlacement() throws {
        let good = try GGUFFile(path: try write("good.gguf", twoTensors(b: [8], offset: 32).bytes))
        XCTAssertEqual(good.tensors.map(\.byteRange?.count), [32, 32])
        XCTAssertEqual(good.tensors[1].byteRange?.lowerBound, good.dataOffset + 32)

        try assertRefused(twoTensors(b: [8], offset: 16), "tensor 'b' offset 16 is not a multiple of the alignment 32")
        try assertRefused(twoTensors(b: [8], offset: 64, size: 64, alignment: 64),
                          "tensor 'b' is F32 [8] = 32 bytes from offset", "past the end of the file")
        try assertRefused(twoTensors(b: [8], offset: 1 << 40), "tensor 'b' starts at", "past the end of the file")
        try assertRefused(twoTensors(b: [16], offset: 0, size: 96), "tensor 'b' (data offset 0) overlaps tensor 'a'")
        try assertRefused(twoTensors(b: [8], offset: 32, size: 40), "tensor 'b' is F32 [8] = 32 bytes", "past the end")
        try assertRefused(twoTensors(b: [1 << 32, 1 << 32], offset: 32), "tensor 'b' dimensions", "overflows",
                          kind: .outOfMemory)
        try assertRefused(twoTensors(b: [1, 1, 1, 1, 1], offset: 32), "tensor 'b' has 5 dimensions, at most 4")
        try assertRefused(twoTensors(b: [33, 2], type: GGMLType.q8_0.id, offset: 32),
                          "tensor 'b' is Q8_0 with rows of 33 elements, not a multiple of its block size 32")
        // Q8_0 [32, 2] is 2 blocks of 34 bytes: inside 32 + 68 <= 128.
        let q8 = try GGUFFile(path: try write("q8.gguf", twoTensors(b: [32, 2], type: 8, offset: 32, size: 128).bytes))
        XCTAssertEqual(q8.tensor("b")?.byteRange?.count, 68)
        XCTAssertEqual(q8.tensor("b")?.shape, [2, 32])
    }

    func testDuplicateTensorNameAndUnknownType() throws {
        var builder = Builder()
        builder.header(tensors: 2)
        builder.tensor("w", dims: [8], offset: 0)
        builder.tensor("w", dims: [8], offset: 32)
        builder.data(64)
        try assertRefused(builder, "tensor 'w' appears twice")

        // An unknown ggml type opens (so the file can be listed); its bytes are refused by id.
        let path = try write("unknown.gguf", twoTensors(b: [256], type: 99, offset: 32).bytes)
        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.tensor("b")?.type.name, "type 99")
        XCTAssertNil(file.tensor("b")?.byteRange)
        XCTAssertThrowsError(try file.withTensorBytes("b") { $0.count }) { error in
            assertError(error, .format, [path, "tensor 'b'", "ggml type id 99"])
        }
        XCTAssertEqual(try file.withTensorBytes("a") { $0.count }, 32)
    }

    func testGGMLTypeTable() {
        let expected: [(GGMLType, String, Int, Int)] = [
            (.f32, "F32", 1, 4), (.f16, "F16", 1, 2), (.bf16, "BF16", 1, 2), (.q4_0, "Q4_0", 32, 18),
            (.q4_1, "Q4_1", 32, 20), (.q5_0, "Q5_0", 32, 22), (.q5_1, "Q5_1", 32, 24), (.q8_0, "Q8_0", 32, 34),
            (.q8_1, "Q8_1", 32, 36), (.q2_K, "Q2_K", 256, 84), (.q3_K, "Q3_K", 256, 110), (.q4_K, "Q4_K", 256, 144),
            (.q5_K, "Q5_K", 256, 176), (.q6_K, "Q6_K", 256, 210), (.q8_K, "Q8_K", 256, 292), (.i8, "I8", 1, 1),
            (.i16, "I16", 1, 2), (.i32, "I32", 1, 4), (.i64, "I64", 1, 8), (.f64, "F64", 1, 8),
        ]
        for (type, name, block, bytes) in expected {
            XCTAssertEqual(type.name, name)
            XCTAssertEqual(type.blockSize, block, name)
            XCTAssertEqual(type.bytesPerBlock, bytes, name)
        }
        XCTAssertFalse(GGMLType(id: 4).isKnown)
    }
}
