/// What lmx used from Foundation's string API, without Foundation.
extension StringProtocol {
    /// Without leading and trailing blanks, scalar by scalar, like Foundation's
    /// `trimmingCharacters(in: .whitespaces)`: its set is tab, the space separators (Unicode
    /// category Zs) and U+200B ZERO WIDTH SPACE; newlines stay.
    func trimmingBlanks() -> String {
        func blank(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar.value {
            case 0x09, 0x20, 0xA0, 0x1680, 0x2000...0x200B, 0x202F, 0x205F, 0x3000: return true
            default: return false
            }
        }
        let scalars = Substring(self).unicodeScalars
        guard let first = scalars.firstIndex(where: { !blank($0) }),
              let last = scalars.lastIndex(where: { !blank($0) }) else { return "" }
        return String(Substring(scalars[first...last]))
    }

    /// Cut or filled with spaces to `length` UTF-16 code units, like Foundation's
    /// `padding(toLength:withPad: " ", startingAt: 0)`.
    func padded(toLength length: Int) -> String {
        let units = Array(utf16)
        if units.count >= length { return String(decoding: units.prefix(length), as: UTF16.self) }
        return String(self) + String(repeating: " ", count: length - units.count)
    }
}
