/// A ggml tensor type id from a GGUF tensor info, with the block layout of the types this reader
/// knows (ggml.c's `type_traits`): a row of `n` elements takes `n / blockSize * bytesPerBlock`
/// bytes. An id not in the table is kept (`isKnown == false`) rather than refused at open, so a file
/// with newer types can still be listed; asking for such a tensor's bytes throws (see `GGUFFile`).
public struct GGMLType: Hashable, Sendable, CustomStringConvertible {
    public let id: UInt32

    public init(id: UInt32) { self.id = id }

    struct Layout {
        let name: String
        let blockSize: Int
        let bytesPerBlock: Int
    }

    /// ggml's ids (ggml.h `enum ggml_type`); 4 and 5 (the removed Q4_2/Q4_3) and the IQ types are
    /// not in the table.
    static let layouts: [UInt32: Layout] = [
        0: Layout(name: "F32", blockSize: 1, bytesPerBlock: 4),
        1: Layout(name: "F16", blockSize: 1, bytesPerBlock: 2),
        2: Layout(name: "Q4_0", blockSize: 32, bytesPerBlock: 18),
        3: Layout(name: "Q4_1", blockSize: 32, bytesPerBlock: 20),
        6: Layout(name: "Q5_0", blockSize: 32, bytesPerBlock: 22),
        7: Layout(name: "Q5_1", blockSize: 32, bytesPerBlock: 24),
        8: Layout(name: "Q8_0", blockSize: 32, bytesPerBlock: 34),
        9: Layout(name: "Q8_1", blockSize: 32, bytesPerBlock: 36),
        10: Layout(name: "Q2_K", blockSize: 256, bytesPerBlock: 84),
        11: Layout(name: "Q3_K", blockSize: 256, bytesPerBlock: 110),
        12: Layout(name: "Q4_K", blockSize: 256, bytesPerBlock: 144),
        13: Layout(name: "Q5_K", blockSize: 256, bytesPerBlock: 176),
        14: Layout(name: "Q6_K", blockSize: 256, bytesPerBlock: 210),
        15: Layout(name: "Q8_K", blockSize: 256, bytesPerBlock: 292),
        24: Layout(name: "I8", blockSize: 1, bytesPerBlock: 1),
        25: Layout(name: "I16", blockSize: 1, bytesPerBlock: 2),
        26: Layout(name: "I32", blockSize: 1, bytesPerBlock: 4),
        27: Layout(name: "I64", blockSize: 1, bytesPerBlock: 8),
        28: Layout(name: "F64", blockSize: 1, bytesPerBlock: 8),
        30: Layout(name: "BF16", blockSize: 1, bytesPerBlock: 2),
    ]

    public static let f32 = GGMLType(id: 0), f16 = GGMLType(id: 1), q4_0 = GGMLType(id: 2), q4_1 = GGMLType(id: 3)
    public static let q5_0 = GGMLType(id: 6), q5_1 = GGMLType(id: 7), q8_0 = GGMLType(id: 8), q8_1 = GGMLType(id: 9)
    public static let q2_K = GGMLType(id: 10), q3_K = GGMLType(id: 11), q4_K = GGMLType(id: 12)
    public static let q5_K = GGMLType(id: 13), q6_K = GGMLType(id: 14), q8_K = GGMLType(id: 15)
    public static let i8 = GGMLType(id: 24), i16 = GGMLType(id: 25), i32 = GGMLType(id: 26), i64 = GGMLType(id: 27)
    public static let f64 = GGMLType(id: 28), bf16 = GGMLType(id: 30)

    var layout: Layout? { Self.layouts[id] }

    public var isKnown: Bool { layout != nil }
    /// ggml's name (`Q4_K`), or `type <id>` for an id not in the table.
    public var name: String { layout?.name ?? "type \(id)" }
    public var description: String { name }
    /// Elements per block (1 for the plain types); nil when unknown.
    public var blockSize: Int? { layout?.blockSize }
    /// Bytes per block; nil when unknown.
    public var bytesPerBlock: Int? { layout?.bytesPerBlock }
}
