// The loramixer side of bench/tokenizer.py, compiled by it with `swiftc -O` against the release
// build's LoRAMixer module (no package target: see bench/README.md, "Tokenizer").
//
//     tokenizer_bench MODEL_DIR TEXT_FILE EXPECTED_IDS LOADS ENCODES
//
// Times `Tokenizer(directory:)` LOADS times and `encode(text, addSpecialTokens: false)` ENCODES
// times after one warm-up encode, checks that the ids equal EXPECTED_IDS (little-endian int32,
// what `tokenizers` gave for the same text) and prints one line of JSON:
// {"load_ms": [...], "encode_s": [...], "tokens": N, "bytes": N, "ids_equal": true, "first_mismatch": -1}

import Glibc
import LoRAMixer

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func readFile(_ path: String) -> [UInt8] {
    guard let file = fopen(path, "rb") else {
        fputs("tokenizer_bench: cannot open \(path)\n", stderr)
        exit(2)
    }
    defer { fclose(file) }
    fseek(file, 0, SEEK_END)
    let size = ftell(file)
    fseek(file, 0, SEEK_SET)
    var bytes = [UInt8](repeating: 0, count: size)
    let read = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, size, file) }
    guard read == size else {
        fputs("tokenizer_bench: short read of \(path)\n", stderr)
        exit(2)
    }
    return bytes
}

let arguments = CommandLine.arguments
guard arguments.count == 6, let loads = Int(arguments[4]), let encodes = Int(arguments[5]), loads > 0, encodes > 0 else {
    fputs("usage: tokenizer_bench MODEL_DIR TEXT_FILE EXPECTED_IDS LOADS ENCODES\n", stderr)
    exit(2)
}
let textBytes = readFile(arguments[2])
let text = String(decoding: textBytes, as: UTF8.self)
let expectedBytes = readFile(arguments[3])
let expected: [Int32] = expectedBytes.withUnsafeBytes { raw in
    (0..<(raw.count / 4)).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
}

var loadMS: [Double] = []
var tokenizer: Tokenizer?
for _ in 0..<loads {
    let start = now()
    let loaded = try Tokenizer(directory: arguments[1])
    loadMS.append((now() - start) * 1000)
    tokenizer = loaded
}
let tok = tokenizer!

var ids = try tok.encode(text, addSpecialTokens: false)  // warm-up (fills the word cache, as for tokenizers)
var encodeS: [Double] = []
for _ in 0..<encodes {
    let start = now()
    ids = try tok.encode(text, addSpecialTokens: false)
    encodeS.append(now() - start)
}

var mismatch = -1
for index in 0..<max(ids.count, expected.count) {
    if index >= ids.count || index >= expected.count || ids[index] != expected[index] {
        mismatch = index
        break
    }
}
func list(_ values: [Double]) -> String { "[" + values.map { "\($0)" }.joined(separator: ", ") + "]" }
print("{\"load_ms\": \(list(loadMS)), \"encode_s\": \(list(encodeS)), \"tokens\": \(ids.count), "
    + "\"expected_tokens\": \(expected.count), \"bytes\": \(textBytes.count), "
    + "\"ids_equal\": \(mismatch < 0), \"first_mismatch\": \(mismatch)}")
