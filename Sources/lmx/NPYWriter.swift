/// NumPy `.npy` format version 1.0 for little-endian float32 arrays in C order: the magic
/// `\x93NUMPY`, version 1 0, a 2-byte little-endian header length, then a Python dict literal
/// padded with spaces and ended by a newline so the data starts on a 64-byte boundary.
enum NPYWriter {
    static func float32(_ values: [Float], shape: [Int]) -> [UInt8] {
        precondition(shape.reduce(1, *) == values.count, "NPY shape does not match the element count")
        let dims = shape.map(String.init).joined(separator: ", ")
        let tuple = shape.count == 1 ? "(\(dims),)" : "(\(dims))"
        var header = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(tuple), }".utf8)
        let preamble = 10
        let padding = (64 - (preamble + header.count + 1) % 64) % 64
        header += repeatElement(UInt8(ascii: " "), count: padding)
        header.append(UInt8(ascii: "\n"))

        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        bytes.reserveCapacity(preamble + header.count + values.count * 4)
        bytes += [UInt8(header.count & 0xFF), UInt8(header.count >> 8)]
        bytes += header
        let words = values.map { $0.bitPattern.littleEndian }
        words.withUnsafeBytes { bytes.append(contentsOf: $0) }
        return bytes
    }
}
