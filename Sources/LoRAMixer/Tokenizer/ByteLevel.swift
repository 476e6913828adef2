/// GPT-2's reversible byte <-> character map: every byte becomes one printable Unicode scalar
/// (printable Latin-1 bytes map to themselves, the other 68 to U+0100...), so a byte string
/// becomes a string a BPE vocabulary can hold. Identical to `tokenizers`' `bytes_char`.
enum ByteLevel {
    /// `scalars[b]` is the character byte `b` maps to.
    static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next) ?? " "
                next += 1
            }
        }
        return table
    }()

    /// The inverse map: scalar value -> byte, for the 256 scalars above.
    static let bytes: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (byte, scalar) in scalars.enumerated() { map[scalar.value] = UInt8(byte) }
        return map
    }()

    /// Maps a piece's UTF-8 bytes to the byte-level string.
    static func encode(_ text: Substring) -> String {
        var result = String.UnicodeScalarView()
        for byte in text.utf8 { result.append(scalars[Int(byte)]) }
        return String(result)
    }

    /// Maps a token back to bytes; a token holding a scalar outside the map (an added token such
    /// as "a b") contributes its own UTF-8 bytes, as `tokenizers`' ByteLevel decoder does.
    static func decode(_ token: String, into output: inout [UInt8]) {
        var mapped: [UInt8] = []
        mapped.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            guard let byte = bytes[scalar.value] else {
                output.append(contentsOf: token.utf8)
                return
            }
            mapped.append(byte)
        }
        output.append(contentsOf: mapped)
    }
}
