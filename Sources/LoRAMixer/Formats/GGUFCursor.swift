/// A bounds-checked little-endian reader over a GGUF file's bytes. Every read checks the bytes
/// left first and throws a format error naming `what` and the offset; no read can leave the
/// buffer. The only unsafe code of the GGUF reader is here.
struct GGUFCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - offset }

    private mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> Int {
        guard count <= remaining else {
            throw LoRAMixerError.format(
                "\(path): \(what()) at offset \(offset) needs \(count) bytes, but the file ends after \(remaining) (file is \(bytes.count) bytes)")
        }
        let start = offset
        offset += count
        return start
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let start = try take(MemoryLayout<T>.size, what())
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: start, as: T.self))
    }

    mutating func uint8(_ what: @autoclosure () -> String) throws -> UInt8 { try load(UInt8.self, what()) }
    mutating func uint16(_ what: @autoclosure () -> String) throws -> UInt16 { try load(UInt16.self, what()) }
    mutating func uint32(_ what: @autoclosure () -> String) throws -> UInt32 { try load(UInt32.self, what()) }
    mutating func uint64(_ what: @autoclosure () -> String) throws -> UInt64 { try load(UInt64.self, what()) }

    /// `count` raw bytes, as a view into the file.
    mutating func slice(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        let start = try take(count, what())
        return UnsafeRawBufferPointer(rebasing: bytes[start..<(start + count)])
    }
}
