/// Turns a stream of byte chunks (one token's bytes at a time) into UTF-8-complete text: bytes
/// of a character cut between tokens are held until the character is whole. The concatenation of
/// everything it returns equals `String(decoding: allBytes, as: UTF8.self)`: invalid sequences
/// become U+FFFD the same way.
public struct UTF8Assembler: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    /// Appends `bytes`; returns the text that is now complete (possibly empty).
    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        pending.append(contentsOf: bytes)
        let split = Self.incompleteTailStart(pending)
        guard split > 0 else { return "" }
        let text = String(decoding: pending[..<split], as: UTF8.self)
        pending.removeFirst(split)
        return text
    }

    /// Whatever is held (an unfinished character becomes U+FFFD), and empties the assembler.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Whether bytes are held, waiting for the rest of a character.
    public var isHoldingBytes: Bool { !pending.isEmpty }

    /// Where a trailing sequence that is a proper prefix of a valid character starts (the count
    /// when there is none). A lead byte always starts a new decode, so splitting there does not
    /// change how the bytes before it decode.
    static func incompleteTailStart(_ bytes: [UInt8]) -> Int {
        let count = bytes.count
        var start = count - 1
        // a character is at most 4 bytes: look back over at most 3 continuation bytes
        while start >= 0, count - start <= 4 {
            let byte = bytes[start]
            if byte & 0xC0 != 0x80 {
                let width: Int
                switch byte {
                case 0xC2...0xDF: width = 2
                case 0xE0...0xEF: width = 3
                case 0xF0...0xF4: width = 4
                default: return count
                }
                guard count - start < width else { return count }
                return isValidPrefix(bytes[start...]) ? start : count
            }
            start -= 1
        }
        return count
    }

    /// Whether a lead byte and the continuation bytes after it can still become one valid
    /// character (second-byte ranges exclude overlongs, surrogates and values above U+10FFFF).
    private static func isValidPrefix(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let lead = bytes.first else { return false }
        let rest = bytes.dropFirst()
        guard let second = rest.first else { return true }
        let range: ClosedRange<UInt8>
        switch lead {
        case 0xE0: range = 0xA0...0xBF
        case 0xED: range = 0x80...0x9F
        case 0xF0: range = 0x90...0xBF
        case 0xF4: range = 0x80...0x8F
        default: range = 0x80...0xBF
        }
        return range.contains(second) && rest.dropFirst().allSatisfy { $0 & 0xC0 == 0x80 }
    }
}
