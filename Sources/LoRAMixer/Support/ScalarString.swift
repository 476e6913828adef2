/// A string key compared by its Unicode scalars (its UTF-8 bytes), not by canonical equivalence
/// as `String` is: "é" (U+00E9) and "e\u{301}" are equal Strings but distinct JSON keys and
/// distinct tokens of a SentencePiece vocabulary. Hashing the bytes is also cheaper than
/// `String`'s normalizing hash for non-ASCII text.
struct ScalarString: Hashable, Sendable {
    let text: String

    init(_ text: String) { self.text = text }

    static func == (lhs: ScalarString, rhs: ScalarString) -> Bool {
        guard lhs.text.utf8.count == rhs.text.utf8.count else { return false }
        var left = lhs.text
        var right = rhs.text
        return left.withUTF8 { a in right.withUTF8 { b in a.elementsEqual(b) } }
    }

    func hash(into hasher: inout Hasher) {
        var copy = text
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
