import Foundation
import XCTest
@testable import LoRAMixer

/// Paths and expected tensors of the oracle fixtures written by tools/make_fixtures.py.
enum Fixtures {
    static let root: String = {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return here.deletingLastPathComponent().appendingPathComponent("Fixtures").path
    }()

    static let cases = ["llama_f32", "mistral_f32", "qwen2_f32", "llama_bf16", "mamba_f32", "falcon_mamba_f32"]
    static let expertNames = ["e0", "e1", "e2"]

    static func path(_ components: String...) -> String {
        components.reduce(root) { ($0 as NSString).appendingPathComponent($1) }
    }

    static func expected(_ fixture: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(path: path(fixture, "expected.safetensors"))
    }

    static func tokens(_ fixture: String) throws -> [Int32] {
        try expected(fixture).tensor("tokens").int32s()
    }

    static func mixer(_ fixture: String, router: String? = "router.safetensors") throws -> Mixer {
        let mixer = Mixer(model: try LanguageModel(directory: path(fixture)))
        for name in expertNames {
            try mixer.addPEFT(name: name, directory: path(fixture, "adapters", name))
        }
        if let router { try mixer.loadRouter(path: path(fixture, router)) }
        return mixer
    }

    /// Tolerance on logits: 1e-4 max abs (logits have std ~1.6). That holds for bf16 weights too,
    /// since the oracle computes in f32 from the same bf16-rounded values (measured: <= 1.3e-5 for
    /// every case and mode), tighter than the 2e-2 allowed for a bf16-arithmetic oracle.
    static func tolerance(_ fixture: String) -> Float { 1e-4 }
}

func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): element count", file: file, line: line)
    guard actual.count == expected.count else { return }
    var worst: Float = 0
    var worstIndex = 0
    for i in actual.indices where abs(actual[i] - expected[i]) > worst || actual[i].isNaN {
        worst = actual[i].isNaN ? .infinity : abs(actual[i] - expected[i])
        worstIndex = i
    }
    XCTAssertLessThanOrEqual(worst, tolerance,
        "\(what): max |diff| \(worst) at \(worstIndex) (got \(actual[worstIndex]), expected \(expected[worstIndex]))",
        file: file, line: line)
}

/// Asserts that `body` throws a `LoRAMixerError` of `kind` whose message contains every needle.
func assertThrows(_ kind: LoRAMixerError.Kind, containing needles: [String], file: StaticString = #filePath,
                  line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected a \(kind) error", file: file, line: line)
    } catch let error as LoRAMixerError {
        XCTAssertEqual(error.kind, kind, error.message, file: file, line: line)
        for needle in needles {
            XCTAssertTrue(error.message.contains(needle), "'\(error.message)' lacks '\(needle)'", file: file, line: line)
        }
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

/// A weight matrix stored as `dtype` in a safetensors file, at an odd (unaligned) offset.
func storedMatrix(_ values: [Float], rows: Int, cols: Int, dtype: DType) throws -> WeightMatrix {
    let bytes: [UInt8]
    switch dtype {
    case .f16: bytes = values.flatMap { withUnsafeBytes(of: floatToF16($0).littleEndian, Array.init) }
    case .bf16: bytes = values.flatMap { withUnsafeBytes(of: floatToBF16($0).littleEndian, Array.init) }
    default: bytes = values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
    }
    let path = NSTemporaryDirectory() + "lmx-kernel-\(UInt64.random(in: 0...UInt64.max)).safetensors"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try SafeTensorsWriter.write([(name: "a", dtype: .u8, shape: [3], data: [1, 2, 3]),
                                 (name: "w", dtype: dtype, shape: [rows, cols], data: bytes)], metadata: [:], to: path)
    return try WeightMatrix(SafeTensorsFile(path: path, mode: .copied).tensor("w"), rows: rows, cols: cols, source: path)
}

/// A test case with a fresh private folder per test (`directory`, mode 0700), removed afterwards.
class TemporaryFolderTestCase: XCTestCase {
    private(set) var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "lmx-\(String(describing: type(of: self)))-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
