import CLoRAMixer
import LoRAMixer

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

    /// A caller array of `count` elements; NULL is refused unless `count` is 0 and `allowEmpty`.
    static func array<T>(_ pointer: UnsafePointer<T>?, count: Int, _ name: String, allowEmpty: Bool = false) throws -> [T] {
        if count == 0 {
            guard allowEmpty else { throw LoRAMixerError.invalidArgument("'\(name)' must not be empty (count is 0)") }
            return []
        }
        guard let pointer else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL when its count is \(count)") }
        guard count <= Int.max / MemoryLayout<T>.stride else {
            throw LoRAMixerError.invalidArgument("'\(name)' count \(count) is too large")
        }
        return Array(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// The struct_size a caller put in a params struct: at least `minimum` (the size of the first
    /// version of that struct), or an ABI error naming the struct.
    static func structSize(_ size: UInt32, minimum: Int, _ name: String) throws -> Int {
        guard Int(size) >= minimum else {
            throw LoRAMixerError(.abi, "\(name).struct_size is \(size), expected at least \(minimum); initialise it with \(name)_default() or sizeof(\(name))")
        }
        return Int(size)
    }

    static func size(_ value: Int, _ name: String) throws -> Int {
        guard value >= 0 else { throw LoRAMixerError.invalidArgument("'\(name)' is too large") }
        return value
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
