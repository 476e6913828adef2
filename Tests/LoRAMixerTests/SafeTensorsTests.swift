import Foundation
import XCTest
@testable import LoRAMixer

final class SafeTensorsTests: TemporaryFolderTestCase {
    // MARK: Helpers

    /// Writes a file byte by byte: 8-byte header length (the header's size unless overridden),
    /// header text, data. This is how the malformed files are made.
    @discardableResult
    private func rawFile(_ name: String, header: String, data: [UInt8] = [], headerLength: UInt64? = nil) throws -> String {
        let headerBytes = Array(header.utf8)
        var bytes = withUnsafeBytes(of: (headerLength ?? UInt64(headerBytes.count)).littleEndian) { Array($0) }
        bytes += headerBytes + data
        let path = "\(directory)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func rawBytesFile(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = "\(directory)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Asserts opening `path` fails, in both load modes, with `kind` and a message containing
    /// the file name and every string in `contains`.
    private func assertRefused(
        _ path: String, _ kind: LoRAMixerError.Kind, _ contains: String..., line: UInt = #line
    ) {
        for mode in [LoadMode.mapped, .copied] {
            XCTAssertThrowsError(try SafeTensorsFile(path: path, mode: mode), line: line) { error in
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

    private func f32Bytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }
    }

    // MARK: Round trips

    func testRoundTripThroughWriterInBothModes() throws {
        let f32: [Float] = [1, -2, 3.5, 0, .infinity, -0.125]
        let f16: [Float] = [1, -2.5, 65504, 0.000061035156]
        let bf16: [Float] = [1, -2.5, 3.140625, -0]
        let path = "\(directory)/model.safetensors"
        try SafeTensorsWriter.write([
            (name: "e_i32", dtype: .i32, shape: [3], data: [Int32(-1), 7, .max].flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } }),
            (name: "b_f32", dtype: .f32, shape: [2, 3], data: f32Bytes(f32)),
            (name: "a_bytes", dtype: .u8, shape: [3], data: [1, 2, 3]),
            (name: "c_f16", dtype: .f16, shape: [4], data: f16.flatMap { withUnsafeBytes(of: floatToF16($0).littleEndian) { Array($0) } }),
            (name: "d_bf16", dtype: .bf16, shape: [2, 2], data: bf16.flatMap { withUnsafeBytes(of: floatToBF16($0).littleEndian) { Array($0) } }),
            (name: "f_i64", dtype: .i64, shape: [2], data: [Int64.min, 5].flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } }),
            (name: "g_scalar", dtype: .f32, shape: [], data: f32Bytes([42])),
            (name: "h_empty", dtype: .f32, shape: [0, 4], data: []),
        ], metadata: ["format": "pt", "quote": "a\"b"], to: path)

        let raw = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        let headerLength = raw[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual((8 + headerLength) % 8, 0, "data section starts 8-byte aligned")
        XCTAssertTrue(String(decoding: raw[8..<8 + headerLength], as: UTF8.self).hasPrefix(#"{"__metadata__":{"format":"pt","quote":"a\"b"},"a_bytes":"#))

        for mode in [LoadMode.mapped, .copied] {
            let file = try SafeTensorsFile(path: path, mode: mode)
            XCTAssertEqual(file.path, path)
            XCTAssertEqual(file.metadata, ["format": "pt", "quote": "a\"b"])
            XCTAssertEqual(file.tensorNames, ["a_bytes", "b_f32", "c_f16", "d_bf16", "e_i32", "f_i64", "g_scalar", "h_empty"])

            let bytes = try file.tensor("a_bytes")
            XCTAssertEqual(Array(bytes.bytes), [1, 2, 3])
            XCTAssertEqual(bytes.info.byteRange, (8 + headerLength)..<(8 + headerLength + 3))

            let matrix = try file.tensor("b_f32")
            XCTAssertEqual(matrix.info.byteRange.lowerBound % 4, 3, "F32 data deliberately unaligned")
            XCTAssertEqual(matrix.dtype, .f32)
            XCTAssertEqual(matrix.shape, [2, 3])
            XCTAssertEqual(matrix.elementCount, 6)
            XCTAssertEqual(try matrix.floats(), f32)
            XCTAssertNoThrow(try matrix.expectShape([2, 3]))

            XCTAssertEqual(try file.tensor("c_f16").floats(), f16)
            XCTAssertEqual(try file.tensor("d_bf16").floats().map(\.bitPattern), bf16.map(\.bitPattern))
            XCTAssertEqual(try file.tensor("e_i32").int32s(), [-1, 7, .max])
            XCTAssertEqual(try file.tensor("f_i64").int64s(), [.min, 5])
            XCTAssertEqual(try file.tensor("g_scalar").floats(), [42])
            XCTAssertEqual(file.info("g_scalar")?.elementCount, 1)
            XCTAssertEqual(try file.tensor("h_empty").floats(), [])
            XCTAssertNil(file.info("nope"))
        }
    }

    func testFloatOverloadWritesF32() throws {
        let path = "\(directory)/router.safetensors"
        try SafeTensorsWriter.write([(name: "w", shape: [2], data: [0.5, -1])], metadata: [:], to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.metadata, [:])
        XCTAssertEqual(file.info("w")?.dtype, .f32)
        XCTAssertEqual(try file.tensor("w").floats(), [0.5, -1])
    }

    func testReadsFileFromReferenceImplementation() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/llama_f32/model.safetensors").standardized.path
        try XCTSkipUnless(FileManager.default.fileExists(atPath: fixture), "fixture not present")
        let file = try SafeTensorsFile(path: fixture)
        XCTAssertEqual(file.metadata["format"], "pt")
        let embedding = try file.tensor("model.embed_tokens.weight")
        XCTAssertEqual(embedding.shape, [128, 64])
        XCTAssertEqual(try embedding.floats().count, 128 * 64)
    }

    func testWriterReplacesAtomically() throws {
        let path = "\(directory)/out.safetensors"
        try SafeTensorsWriter.write([(name: "x", shape: [1], data: [1])], metadata: [:], to: path)
        try SafeTensorsWriter.write([(name: "y", shape: [2], data: [2, 3])], metadata: ["v": "2"], to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.tensorNames, ["y"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["out.safetensors"])
    }

    func testWriterRefusesInconsistentTensors() throws {
        let path = "\(directory)/bad.safetensors"
        XCTAssertThrowsError(try SafeTensorsWriter.write([(name: "t", dtype: .f32, shape: [2], data: [1, 2, 3])], metadata: [:], to: path)) {
            assertError($0, .invalidArgument, [path, "'t'", "needs 8 bytes, got 3"])
        }
        XCTAssertThrowsError(try SafeTensorsWriter.write([(name: "t", shape: [1], data: [1]), (name: "t", shape: [1], data: [2])], metadata: [:], to: path)) {
            assertError($0, .invalidArgument, [path, "'t'", "used twice"])
        }
        XCTAssertThrowsError(try SafeTensorsWriter.write([(name: "__metadata__", shape: [0], data: [])], metadata: [:], to: path)) {
            assertError($0, .invalidArgument, [path, "reserved"])
        }
        XCTAssertThrowsError(try SafeTensorsWriter.write([(name: "t", shape: [1], data: [1])], metadata: [:], to: "\(directory)/no/such/dir/x.safetensors")) {
            assertError($0, .io, ["x.safetensors", "No such file or directory"])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testViewOutlivesFileAndChecksAccessors() throws {
        let path = try rawFile("v.safetensors", header: #"{"i":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"f":{"dtype":"F32","shape":[1,1],"data_offsets":[4,8]}}"#,
                               data: [9, 0, 0, 0] + f32Bytes([2.5]))
        var file: SafeTensorsFile? = try SafeTensorsFile(path: path)
        let view = try XCTUnwrap(file).tensor("f")
        file = nil
        XCTAssertEqual(try view.floats(), [2.5])

        let integers = try SafeTensorsFile(path: path, mode: .copied).tensor("i")
        XCTAssertEqual(try integers.int32s(), [9])
        XCTAssertThrowsError(try integers.floats()) { assertError($0, .format, [path, "'i'", "dtype I32", "expected F32, F16 or BF16"]) }
        XCTAssertThrowsError(try integers.int64s()) { assertError($0, .format, [path, "'i'", "expected I64"]) }
        XCTAssertThrowsError(try view.int32s()) { assertError($0, .format, [path, "'f'", "dtype F32, expected I32"]) }
        XCTAssertThrowsError(try view.expectShape([1])) {
            assertError($0, .shape, ["\(path): tensor 'f' has shape [1, 1], expected [1]"])
        }
        XCTAssertThrowsError(try SafeTensorsFile(path: path).tensor("missing")) {
            assertError($0, .notFound, [path, "'missing'"])
        }
    }

    // MARK: Malformed files

    func testMissingEmptyAndShortFiles() throws {
        assertRefused("\(directory)/absent.safetensors", .io, "No such file or directory")
        assertRefused(directory, .io, "not a regular file")
        assertRefused(try rawBytesFile("empty.safetensors", []), .format, "0 bytes", "at least 8")
        assertRefused(try rawBytesFile("short.safetensors", [1, 0, 0, 0, 0]), .format, "5 bytes", "at least 8")
    }

    func testHeaderLengthBounds() throws {
        assertRefused(try rawFile("zero.safetensors", header: "{}", headerLength: 0), .format, "header length is 0")
        assertRefused(try rawFile("huge.safetensors", header: "{}", headerLength: 1 << 40), .format,
                      "header length 1099511627776 exceeds the limit of 100000000 bytes")
        assertRefused(try rawFile("max.safetensors", header: "{}", headerLength: .max), .format, "exceeds the limit")
        assertRefused(try rawFile("past.safetensors", header: "{}", headerLength: 1000), .format,
                      "header length 1000 runs past the end of the file (10 bytes)")
        XCTAssertEqual(try SafeTensorsFile(path: try rawFile("ok.safetensors", header: "{}  ")).tensorNames, [])
    }

    func testHeaderMustBeAJSONObject() throws {
        assertRefused(try rawFile("nonjson.safetensors", header: "{not json}"), .format, "invalid JSON at byte 1")
        assertRefused(try rawFile("binary.safetensors", header: "{\"a\u{FFFF}", headerLength: 4), .format, "invalid JSON")
        assertRefused(try rawFile("array.safetensors", header: "[1, 2]"), .format, "header is a JSON array, expected an object")
        assertRefused(try rawFile("trailing.safetensors", header: "{} {}"), .format, "after the JSON value")
    }

    func testMetadataRules() throws {
        assertRefused(try rawFile("meta1.safetensors", header: #"{"__metadata__":{"ok":"x","count":1}}"#), .format,
                      "__metadata__ value for 'count' is a JSON number, expected a string")
        assertRefused(try rawFile("meta2.safetensors", header: #"{"__metadata__":["x"]}"#), .format,
                      "__metadata__ is a JSON array, expected an object")
    }

    func testTensorEntryFields() throws {
        func entry(_ fields: String) -> String { #"{"t.weight":{"# + fields + "}}" }
        assertRefused(try rawFile("notobj.safetensors", header: #"{"t.weight":[1]}"#), .format, "'t.weight'", "is a JSON array, expected an object")
        assertRefused(try rawFile("nodtype.safetensors", header: entry(#""shape":[],"data_offsets":[0,0]"#)), .format, "'t.weight'", "no string 'dtype'")
        assertRefused(try rawFile("dtype.safetensors", header: entry(#""dtype":"F12","shape":[1],"data_offsets":[0,4]"#), data: [0, 0, 0, 0]),
                      .format, "'t.weight'", "unknown dtype 'F12'")
        assertRefused(try rawFile("noshape.safetensors", header: entry(#""dtype":"F32","shape":3,"data_offsets":[0,4]"#)), .format, "'t.weight'", "no array 'shape'")
        for (index, bad) in ["-1", "1.5", "1e3", "\"2\"", "null", "99999999999999999999"].enumerated() {
            let path = try rawFile("shape\(index).safetensors", header: entry(#""dtype":"F32","shape":[2,"# + bad + #"],"data_offsets":[0,8]"#), data: Array(repeating: 0, count: 8))
            assertRefused(path, .format, "'t.weight'", "'shape' value \(bad), expected a non-negative integer")
        }
        assertRefused(try rawFile("offsets3.safetensors", header: entry(#""dtype":"U8","shape":[1],"data_offsets":[0,1,1]"#), data: [0]),
                      .format, "'t.weight'", "3 'data_offsets' values, expected 2")
        assertRefused(try rawFile("offsetneg.safetensors", header: entry(#""dtype":"U8","shape":[1],"data_offsets":[-1,0]"#), data: [0]),
                      .format, "'t.weight'", "'data_offsets' value -1")
    }

    func testOffsetRules() throws {
        assertRefused(try rawFile("reversed.safetensors", header: #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]),
                      .format, "'t'", "data_offsets [4, 0] with begin after end")
        assertRefused(try rawFile("outside.safetensors", header: #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]),
                      .format, "tensor 't' data [0, 8) lies outside the data section (4 bytes)")
        assertRefused(try rawFile("far.safetensors", header: #"{"t":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}}"#, data: [0]),
                      .format, "'t'", "lies outside the data section (1 bytes)")
        assertRefused(try rawFile("size.safetensors", header: #"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)),
                      .format, "tensor 't' is F32 [3] = 12 bytes, but data_offsets [0, 8) span 8 bytes")
    }

    func testTensorsMustTileTheDataSection() throws {
        let f32 = #""dtype":"F32","shape":[2]"#
        assertRefused(try rawFile("overlap.safetensors", header: #"{"a":{"# + f32 + #","data_offsets":[0,8]},"b":{"# + f32 + #","data_offsets":[4,12]}}"#,
                                  data: Array(repeating: 0, count: 12)),
                      .format, "tensor 'b' data [4, 12) overlaps tensor 'a' data [0, 8)")
        assertRefused(try rawFile("same.safetensors", header: #"{"a":{"# + f32 + #","data_offsets":[0,8]},"b":{"# + f32 + #","data_offsets":[0,8]}}"#,
                                  data: Array(repeating: 0, count: 8)),
                      .format, "overlaps", "'a'", "'b'")
        assertRefused(try rawFile("gap.safetensors", header: #"{"b":{"# + f32 + #","data_offsets":[12,20]},"a":{"# + f32 + #","data_offsets":[0,8]}}"#,
                                  data: Array(repeating: 0, count: 20)),
                      .format, "data bytes [8, 12) before tensor 'b' belong to no tensor")
        assertRefused(try rawFile("lead.safetensors", header: #"{"a":{"# + f32 + #","data_offsets":[2,10]}}"#, data: Array(repeating: 0, count: 10)),
                      .format, "data bytes [0, 2) before tensor 'a'")
        assertRefused(try rawFile("trail.safetensors", header: #"{"a":{"# + f32 + #","data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 11)),
                      .format, "data bytes [8, 11) after the last tensor belong to no tensor (data section is 11 bytes)")
        assertRefused(try rawFile("nodata.safetensors", header: "{}", data: [0]), .format, "data bytes [0, 1) after the last tensor")
        // Empty tensors may sit anywhere along the tiling.
        let empty = try rawFile("empty.safetensors", header: #"{"a":{"# + f32 + #","data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},"y":{"dtype":"I8","shape":[2,0],"data_offsets":[0,0]}}"#,
                                data: Array(repeating: 0, count: 8))
        XCTAssertEqual(try SafeTensorsFile(path: empty).tensorNames, ["a", "z", "y"])
    }

    func testShapeOverflowIsRefused() throws {
        assertRefused(try rawFile("elements.safetensors", header: #"{"t":{"dtype":"U8","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}"#),
                      .outOfMemory, "tensor 't' shape", "overflows")
        assertRefused(try rawFile("bytes.safetensors", header: #"{"t":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}"#),
                      .format, "tensor 't' is F64 [2305843009213693952] = more than 9223372036854775807 bytes")
    }

    func testDuplicateTensorNameIsRefused() throws {
        let path = try rawFile("dup.safetensors", header: #"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#,
                               data: [1, 2])
        assertRefused(path, .format, "invalid JSON", "duplicate key \"w\"")
    }

    // MARK: Collections

    private func writeIndex(_ weightMap: [(String, String)], in folder: String) throws {
        var map = JSONObject()
        for (name, shard) in weightMap { map[name] = .string(shard) }
        let index = JSONValue.object(["metadata": .object(["total_size": JSONValue(0)]), "weight_map": .object(map)])
        try index.serialized().write(toFile: "\(folder)/model.safetensors.index.json", atomically: false, encoding: .utf8)
    }

    private func writeShards(_ shards: [String: [String]]) throws {
        for (shard, names) in shards {
            try SafeTensorsWriter.write(names.map { (name: $0, shape: [2], data: [Float($0.count), 1]) }, metadata: [:], to: "\(directory)/\(shard)")
        }
    }

    func testShardedCollectionRoundTrip() throws {
        try writeShards(["model-00001-of-00002.safetensors": ["b", "a"], "model-00002-of-00002.safetensors": ["ccc"]])
        try writeIndex([("ccc", "model-00002-of-00002.safetensors"), ("a", "model-00001-of-00002.safetensors"), ("b", "model-00001-of-00002.safetensors")], in: directory)
        for mode in [LoadMode.mapped, .copied] {
            let collection = try SafeTensorsCollection(directory: directory + "/", mode: mode)
            XCTAssertEqual(collection.tensorNames, ["ccc", "a", "b"])
            XCTAssertTrue(collection.contains("a"))
            XCTAssertFalse(collection.contains("d"))
            XCTAssertEqual(collection.totalBytes, 24)
            XCTAssertEqual(try collection.tensor("ccc").floats(), [3, 1])
            XCTAssertEqual(try collection.tensor("ccc").path, "\(directory)/model-00002-of-00002.safetensors")
            XCTAssertEqual(collection.info("a")?.shape, [2])
            XCTAssertThrowsError(try collection.tensor("d")) { assertError($0, .notFound, [directory, "'d'"]) }
        }
    }

    func testSingleFileCollection() throws {
        try writeShards(["model.safetensors": ["x", "y"]])
        let collection = try SafeTensorsCollection(directory: directory, mode: .mapped)
        XCTAssertEqual(collection.tensorNames, ["x", "y"])
        XCTAssertEqual(collection.totalBytes, 16)
        XCTAssertEqual(try collection.tensor("y").floats(), [1, 1])
    }

    func testCollectionNeedsWeights() {
        XCTAssertThrowsError(try SafeTensorsCollection(directory: directory, mode: .mapped)) {
            assertError($0, .io, ["\(directory): no model.safetensors or model.safetensors.index.json"])
        }
    }

    func testIndexPointingToMissingShard() throws {
        try writeIndex([("a", "gone.safetensors")], in: directory)
        XCTAssertThrowsError(try SafeTensorsCollection(directory: directory, mode: .mapped)) {
            assertError($0, .io, ["model.safetensors.index.json: shard 'gone.safetensors' of tensor 'a': \(self.directory)/gone.safetensors: cannot open", "No such file or directory"])
        }
    }

    func testIndexListsTensorAbsentFromShard() throws {
        try writeShards(["s1.safetensors": ["a"]])
        try writeIndex([("a", "s1.safetensors"), ("b", "s1.safetensors")], in: directory)
        XCTAssertThrowsError(try SafeTensorsCollection(directory: directory, mode: .mapped)) {
            assertError($0, .format, ["model.safetensors.index.json", "tensor 'b' is mapped to shard 's1.safetensors', which has no such tensor"])
        }
    }

    func testTensorInTwoShardsIsRefused() throws {
        try writeShards(["s1.safetensors": ["a", "b"], "s2.safetensors": ["b"]])
        try writeIndex([("a", "s1.safetensors"), ("b", "s2.safetensors")], in: directory)
        XCTAssertThrowsError(try SafeTensorsCollection(directory: directory, mode: .mapped)) {
            assertError($0, .format, ["model.safetensors.index.json", "tensor 'b' appears in shard 's1.safetensors' and in shard 's2.safetensors'"])
        }
    }

    func testShardTensorMissingFromIndexIsRefused() throws {
        try writeShards(["s1.safetensors": ["a", "extra"]])
        try writeIndex([("a", "s1.safetensors")], in: directory)
        XCTAssertThrowsError(try SafeTensorsCollection(directory: directory, mode: .mapped)) {
            assertError($0, .format, ["model.safetensors.index.json", "tensor 'extra' in shard 's1.safetensors' is not listed in weight_map"])
        }
    }

    func testIndexRules() throws {
        try writeIndex([("a", "../s1.safetensors")], in: directory)
        XCTAssertThrowsError(try SafeTensorsCollection(directory: directory, mode: .mapped)) {
            assertError($0, .format, ["model.safetensors.index.json", "shard '../s1.safetensors' of tensor 'a' is not a plain file name"])
        }
        let indexPath = "\(directory)/model.safetensors.index.json"
        try #"{"weight_map": {"a": 1}}"#.write(toFile: indexPath, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try SafeTensorsCollection(directory: directory, mode: .mapped)) {
            assertError($0, .format, [indexPath, "weight_map entry for tensor 'a' is a JSON number"])
        }
        try #"{"metadata": {}}"#.write(toFile: indexPath, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try SafeTensorsCollection(directory: directory, mode: .mapped)) {
            assertError($0, .format, [indexPath, "no 'weight_map' object"])
        }
        try #"{"weight_map": {"a": "s", "a": "t"}}"#.write(toFile: indexPath, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try SafeTensorsCollection(directory: directory, mode: .mapped)) {
            assertError($0, .format, [indexPath, "duplicate key \"a\""])
        }
    }

    // MARK: Conversions

    func testBF16Decoding() {
        XCTAssertEqual(bf16ToFloat(0x3F80), 1)
        XCTAssertEqual(bf16ToFloat(0xC020), -2.5)
        XCTAssertEqual(bf16ToFloat(0x7F7F), 3.3895314e38)
        XCTAssertEqual(bf16ToFloat(0x0001), Float(sign: .plus, exponent: -133, significand: 1))
        XCTAssertEqual(bf16ToFloat(0x8000).bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(bf16ToFloat(0x7F80), .infinity)
        XCTAssertEqual(bf16ToFloat(0xFF80), -.infinity)
        XCTAssertTrue(bf16ToFloat(0x7FC0).isNaN)
    }

    func testBF16EncodingRoundsToNearestEven() {
        XCTAssertEqual(floatToBF16(1), 0x3F80)
        XCTAssertEqual(floatToBF16(-2.5), 0xC020)
        XCTAssertEqual(floatToBF16(Float(bitPattern: 0x3F80_7FFF)), 0x3F80) // below half: down
        XCTAssertEqual(floatToBF16(Float(bitPattern: 0x3F80_8000)), 0x3F80) // tie, even below
        XCTAssertEqual(floatToBF16(Float(bitPattern: 0x3F80_8001)), 0x3F81) // above half: up
        XCTAssertEqual(floatToBF16(Float(bitPattern: 0x3F81_8000)), 0x3F82) // tie, even above
        XCTAssertEqual(floatToBF16(Float(bitPattern: 0x0000_8000)), 0x0000) // subnormal tie
        XCTAssertEqual(floatToBF16(Float(bitPattern: 0x0001_8000)), 0x0002)
        XCTAssertEqual(floatToBF16(.greatestFiniteMagnitude), 0x7F80)      // overflows to infinity
        XCTAssertEqual(floatToBF16(-.infinity), 0xFF80)
        XCTAssertEqual(floatToBF16(-0.0), 0x8000)
        // A NaN whose payload lives only in the low half must not become infinity.
        let lowPayloadNaN = floatToBF16(Float(bitPattern: 0x7F80_0001))
        XCTAssertTrue(bf16ToFloat(lowPayloadNaN).isNaN)
        XCTAssertTrue(bf16ToFloat(floatToBF16(.nan)).isNaN)
        XCTAssertEqual(floatToBF16(Float(bitPattern: 0xFFC0_0000)) & 0x8000, 0x8000, "NaN keeps its sign")
    }

    func testF16Conversions() {
        XCTAssertEqual(f16ToFloat(0x3C00), 1)
        XCTAssertEqual(f16ToFloat(0xC100), -2.5)
        XCTAssertEqual(f16ToFloat(0x7BFF), 65504)
        XCTAssertEqual(f16ToFloat(0x0001), Float(sign: .plus, exponent: -24, significand: 1))
        XCTAssertEqual(f16ToFloat(0x03FF), 1023 * Float(sign: .plus, exponent: -24, significand: 1))
        XCTAssertEqual(f16ToFloat(0x7C00), .infinity)
        XCTAssertTrue(f16ToFloat(0x7E00).isNaN)
        XCTAssertEqual(floatToF16(65504), 0x7BFF)
        XCTAssertEqual(floatToF16(65520), 0x7C00) // tie between 65504 and 65536 rounds to even: infinity
        XCTAssertEqual(floatToF16(1 + Float(sign: .plus, exponent: -11, significand: 1)), 0x3C00) // tie, even below
    }

    func testConvertToFloatReadsUnalignedData() throws {
        let values: [Float] = [1, -2.5, 0.5]
        let encodings: [(DType, [UInt8])] = [
            (.f32, f32Bytes(values)),
            (.f16, values.flatMap { withUnsafeBytes(of: floatToF16($0).littleEndian) { Array($0) } }),
            (.bf16, values.flatMap { withUnsafeBytes(of: floatToBF16($0).littleEndian) { Array($0) } }),
        ]
        for (dtype, encoded) in encodings {
            let shifted: [UInt8] = [0xAA] + encoded
            let output = try [Float](unsafeUninitializedCapacity: 3) { buffer, count in
                try shifted.withUnsafeBytes { raw in
                    try convertToFloat(UnsafeRawBufferPointer(rebasing: raw[1...]), dtype: dtype, into: buffer)
                }
                count = 3
            }
            XCTAssertEqual(output, values, dtype.rawValue)
        }
        var output = [Float](repeating: 0, count: 2)
        try output.withUnsafeMutableBufferPointer { buffer in
            XCTAssertThrowsError(try [UInt8](repeating: 0, count: 4).withUnsafeBytes { try convertToFloat($0, dtype: .f32, into: buffer) }) {
                assertError($0, .invalidArgument, ["4 bytes of F32", "2 floats"])
            }
            XCTAssertThrowsError(try [UInt8](repeating: 0, count: 8).withUnsafeBytes { try convertToFloat($0, dtype: .i32, into: buffer) }) {
                assertError($0, .invalidArgument, ["I32"])
            }
        }
    }

    func testDTypeSizes() {
        XCTAssertEqual(DType.allCases.count, 15)
        XCTAssertEqual(DType(rawValue: "F8_E4M3")?.byteSize, 1)
        XCTAssertEqual(DType.bf16.byteSize, 2)
        XCTAssertEqual(DType.u64.byteSize, 8)
        XCTAssertEqual(DType.allCases.filter(\.isFloatingWeight), [.f16, .bf16, .f32])
    }
}
