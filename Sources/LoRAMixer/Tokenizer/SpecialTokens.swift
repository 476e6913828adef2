/// The ids a generation loop and a chat template need: BOS/EOS/PAD/UNK as the tokenizer's
/// configuration names them, and the ids that end a model's turn.
public struct SpecialTokens: Sendable, Equatable {
    public var bos: Int32?
    public var eos: Int32?
    public var pad: Int32?
    public var unk: Int32?
    /// The ids at which generation stops by default, ascending: the EOS id, every id of
    /// `generation_config.json`'s `eos_token_id` (a number or a list), and special added tokens
    /// that chat templates use to end a turn (`<|eot_id|>`, `<|eom_id|>`, `<|im_end|>`, `<|end|>`,
    /// `<end_of_turn>`, `<|endoftext|>`, `</s>`).
    public var endOfTurn: [Int32]
    /// The BOS and EOS texts (`""` when there is none), which chat templates see as `bos_token`
    /// and `eos_token`.
    public var bosText: String
    public var eosText: String

    public init(bos: Int32? = nil, eos: Int32? = nil, pad: Int32? = nil, unk: Int32? = nil,
                endOfTurn: [Int32] = [], bosText: String = "", eosText: String = "") {
        self.bos = bos
        self.eos = eos
        self.pad = pad
        self.unk = unk
        self.endOfTurn = endOfTurn
        self.bosText = bosText
        self.eosText = eosText
    }

    /// Special tokens that end a turn in the chat templates of common model families.
    static let endOfTurnTexts: Set<String> = [
        "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>",
    ]
}
