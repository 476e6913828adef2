import CLoRAMixer
@_spi(CABI) import LoRAMixer

/// Argument checks shared by the entry points; each throws `invalidArgument` naming the argument.
enum Arguments {
    static func required<T>(_ pointer: UnsafePointer<T>?, _ name: String) throws -> UnsafePointer<T> {
        guard let pointer else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL") }
        return pointer
    }

    static func required<T>(_ pointer: UnsafeMutablePointer<T>?, _ name: String) throws -> UnsafeMutablePointer<T> {
        guard let pointer else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL") }
        return pointer
    }

    static func string(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
        guard let pointer else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL") }
        guard let string = String(validatingCString: pointer) else {
            throw LoRAMixerError.invalidArgument("'\(name)' is not valid UTF-8")
        }
        guard !string.isEmpty else { throw LoRAMixerError.invalidArgument("'\(name)' must not be empty") }
        return string
    }

    /// A caller array of `count` elements, at most `limit` (checked before any element is read, so
    /// a wrong count is refused rather than read past); NULL is refused unless `count` is 0 and
    /// `allowEmpty`.
    static func array<T>(_ pointer: UnsafePointer<T>?, count: Int, limit: Int, _ name: String,
                         allowEmpty: Bool = false) throws -> [T] {
        guard count >= 0, count <= limit else {
            throw LoRAMixerError.invalidArgument("'\(name)' has \(UInt(bitPattern: count)) elements, more than the \(limit) allowed here")
        }
        if count == 0 {
            guard allowEmpty else { throw LoRAMixerError.invalidArgument("'\(name)' must not be empty (count is 0)") }
            return []
        }
        guard let pointer else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL when its count is \(count)") }
        return Array(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// A params struct from the caller, or the defaults for NULL. Its leading struct_size must
    /// reach `minimum` (the end of the struct's version-0 fields: LMX_*_MIN_SIZE in the header),
    /// else LMX_ERR_ABI naming the struct; then min(struct_size, sizeof) bytes are copied over the
    /// defaults, so a host built against an older, shorter header gets defaults for fields
    /// appended since, and a newer host's extra fields are ignored.
    static func params<T>(_ pointer: UnsafePointer<T>?, _ name: String, minimum: Int,
                          default makeDefault: () -> T) throws -> T {
        guard let pointer else { return makeDefault() }
        let raw = UnsafeRawPointer(pointer)
        return try CInterop.readStruct(raw, declaredSize: raw.load(as: UInt32.self), minimum: minimum,
                                       defaults: makeDefault(), name)
    }

    /// The struct_size a caller put in a params struct: at least `minimum` (the size of the first
    /// version of that struct), or an ABI error naming the struct.
    static func structSize(_ size: UInt32, minimum: Int, _ name: String) throws -> Int {
        guard Int(size) >= minimum else {
            throw LoRAMixerError(.abi, "\(name).struct_size is \(size), expected at least \(minimum); set it to sizeof(\(name))")
        }
        return Int(size)
    }

    /// Fills an output struct the caller sized with its first field, `struct_size`: `make` builds
    /// the whole value (given the declared size, to echo back), and only the bytes within the
    /// declared size are written, so an older caller's smaller struct is never overrun.
    static func writeOutput<Output>(_ out: UnsafeMutablePointer<Output>?, _ name: String,
                                    _ make: (UInt32) throws -> Output) throws {
        let out = try required(out, "out")
        let declared = UnsafeRawPointer(out).load(as: UInt32.self)
        let size = try structSize(declared, minimum: MemoryLayout<UInt32>.size, name)
        var value = try make(declared)
        withUnsafeBytes(of: &value) { source in
            UnsafeMutableRawPointer(out).copyMemory(from: source.baseAddress!, byteCount: min(size, source.count))
        }
    }

    /// Version-0 sizes of the params structs (the end of the fields each had when first declared;
    /// loramixer.h names them LMX_*_MIN_SIZE).
    enum MinimumSize {
        static let modelParams = MemoryLayout<lmx_model_params>.offset(of: \.load_mode)! + 4
        static let sessionParams = MemoryLayout<lmx_session_params>.offset(of: \.trace)! + 4
        static let generateParams = MemoryLayout<lmx_generate_params>.offset(of: \.user_data)! + MemoryLayout<UnsafeRawPointer>.size
        static let pluginParams = MemoryLayout<lmx_plugin_params>.offset(of: \.allow_writable)! + 4
        static let trainParams = MemoryLayout<lmx_train_params>.offset(of: \.eval_max_tokens)! + 4
        static let textParams = MemoryLayout<lmx_text_params>.offset(of: \.user_data)! + MemoryLayout<UnsafeRawPointer>.size
    }

    /// `length` bytes of UTF-8 text from the caller (not NUL-terminated; NULL only with length 0).
    /// Bytes that are not valid UTF-8 are refused naming the offset of the first bad one, before
    /// anything else runs (Swift would turn them into U+FFFD silently).
    static func text(_ pointer: UnsafePointer<CChar>?, length: Int, _ name: String) throws -> String {
        guard length > 0 else { return "" }
        guard length <= Int.max / 2 else {
            throw LoRAMixerError.invalidArgument("'\(name)' length \(UInt(bitPattern: length)) is too large")
        }
        guard let pointer else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL when its length is \(length)") }
        let bytes = UnsafeRawBufferPointer(start: pointer, count: length)
        if let offset = invalidUTF8Offset(bytes) {
            let hex = String(bytes[offset], radix: 16, uppercase: true)
            throw LoRAMixerError.invalidArgument("'\(name)' is not valid UTF-8: byte 0x\(hex.count == 1 ? "0" + hex : hex) at offset \(offset)")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The offset of the first byte that does not belong to a valid UTF-8 sequence (overlongs,
    /// surrogates, values above U+10FFFF and cut sequences included), or nil when all are valid.
    static func invalidUTF8Offset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let lead = bytes[i]
            if lead < 0x80 { i += 1; continue }
            let width: Int
            var second: ClosedRange<UInt8> = 0x80...0xBF
            switch lead {
            case 0xC2...0xDF: width = 2
            case 0xE0: width = 3; second = 0xA0...0xBF
            case 0xE1...0xEC, 0xEE...0xEF: width = 3
            case 0xED: width = 3; second = 0x80...0x9F
            case 0xF0: width = 4; second = 0x90...0xBF
            case 0xF1...0xF3: width = 4
            case 0xF4: width = 4; second = 0x80...0x8F
            default: return i
            }
            for k in 1..<width {
                guard i + k < n else { return i }
                let byte = bytes[i + k]
                guard k == 1 ? second.contains(byte) : (byte & 0xC0 == 0x80) else { return i }
            }
            i += width
        }
        return nil
    }

    /// A caller buffer's capacity: a `size_t` above Int.max means "more than enough".
    static func capacity(_ value: Int) -> Int {
        value < 0 ? Int.max : value
    }
}

/// Writes `string` into a caller buffer of `capacity` bytes (NUL included, truncated to fit on a
/// UTF-8 boundary) and reports the full length.
func copyString(_ string: String, into buffer: UnsafeMutablePointer<CChar>?, capacity: Int,
                needed: UnsafeMutablePointer<Int>?) throws {
    let bytes = Array(string.utf8)
    needed?.pointee = bytes.count
    guard capacity > 0 else { return }
    guard let buffer else { throw LoRAMixerError.invalidArgument("'buf' must not be NULL when capacity is \(capacity)") }
    var length = min(bytes.count, capacity - 1)
    while length > 0, length < bytes.count, bytes[length] & 0xC0 == 0x80 { length -= 1 }
    for i in 0..<length { buffer[i] = CChar(bitPattern: bytes[i]) }
    buffer[length] = 0
}
