import CLoRAMixer
import Glibc
import LoRAMixer

// Tokenizers, text streams and chat templates: the "Tokenizers and text" section of loramixer.h.

func resolveTokenizer(_ tokenizer: OpaquePointer?) throws -> Tokenizer {
    try Handles.resolve(tokenizer, .tokenizer, as: Tokenizer.self, "tokenizer")
}

/// A caller's `ids` / `capacity` / `*n` output array: *n gets the count always; NULL with capacity
/// 0 only asks; a non-NULL array too small for the values is LMX_ERR_SHAPE.
private func copyIDs(_ values: [Int32], into ids: UnsafeMutablePointer<Int32>?, capacity: Int,
                     count: UnsafeMutablePointer<Int>, _ what: String) throws {
    count.pointee = values.count
    let capacity = Arguments.capacity(capacity)
    guard let ids else {
        guard capacity == 0 else { throw LoRAMixerError.invalidArgument("'ids' must not be NULL when capacity is \(capacity)") }
        return
    }
    guard capacity >= values.count else {
        throw LoRAMixerError.shape("'capacity' is \(capacity), but \(what) \(values.count) ids")
    }
    ids.update(from: values, count: values.count)
}

/// Writes all of `bytes` and a NUL into a caller buffer, or fails with LMX_ERR_SHAPE writing
/// nothing (for the text stream, which must not lose text); *needed gets the length either way.
func copyWhole(_ bytes: [UInt8], into buffer: UnsafeMutablePointer<CChar>?, capacity: Int,
               needed: UnsafeMutablePointer<Int>) throws {
    needed.pointee = bytes.count
    let capacity = Arguments.capacity(capacity)
    if capacity > 0, buffer == nil { throw LoRAMixerError.invalidArgument("'buf' must not be NULL when capacity is \(capacity)") }
    guard !bytes.isEmpty || capacity > 0 else { return }
    guard let buffer, capacity > bytes.count else {
        throw LoRAMixerError.shape("'capacity' is \(capacity), but the text needs \(bytes.count + 1) bytes (\(bytes.count) and the NUL); nothing was consumed: call again with a larger buffer")
    }
    for i in 0..<bytes.count { buffer[i] = CChar(bitPattern: bytes[i]) }
    buffer[bytes.count] = 0
}

@_cdecl("lmx_tokenizer_load")
public func lmx_tokenizer_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> lmx_status {
    withStatus {
        let out = try Arguments.required(out, "out")
        out.pointee = nil
        let path = try Arguments.string(path, "path")
        out.pointee = Handles.make(try Tokenizer.load(path: path), .tokenizer)
    }
}

@_cdecl("lmx_model_tokenizer")
public func lmx_model_tokenizer(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> lmx_status {
    withStatus {
        let out = try Arguments.required(out, "out")
        out.pointee = nil
        let model = try Handles.resolve(model, .model, as: LanguageModel.self, "model")
        out.pointee = Handles.make(try model.tokenizer(), .tokenizer)
    }
}

@_cdecl("lmx_tokenizer_free")
public func lmx_tokenizer_free(_ tokenizer: OpaquePointer?) {
    Handles.release(tokenizer, .tokenizer)
}

@_cdecl("lmx_tokenizer_get_info")
public func lmx_tokenizer_get_info(_ tokenizer: OpaquePointer?, _ out: UnsafeMutablePointer<lmx_tokenizer_info>?) -> lmx_status {
    withStatus {
        let tokenizer = try resolveTokenizer(tokenizer)
        let special = tokenizer.specialTokens
        try Arguments.writeOutput(out, "lmx_tokenizer_info") { declared in
            lmx_tokenizer_info(
                struct_size: declared, n_vocab: UInt32(clamping: tokenizer.vocabularySize), bos_id: special.bos ?? -1,
                eos_id: special.eos ?? -1, pad_id: special.pad ?? -1, unk_id: special.unk ?? -1,
                has_chat_template: tokenizer.chatTemplateSource == nil ? 0 : 1,
                n_end_of_turn: UInt32(clamping: special.endOfTurn.count), max_id: tokenizer.largestID ?? -1)
        }
    }
}

@_cdecl("lmx_tokenizer_end_of_turn")
public func lmx_tokenizer_end_of_turn(_ tokenizer: OpaquePointer?, _ ids: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                      _ n: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let tokenizer = try resolveTokenizer(tokenizer)
        let n = try Arguments.required(n, "n")
        try copyIDs(tokenizer.specialTokens.endOfTurn, into: ids, capacity: capacity, count: n, "the tokenizer has")
    }
}

@_cdecl("lmx_tokenize")
public func lmx_tokenize(_ tokenizer: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ length: Int, _ addSpecial: UInt32,
                         _ parseSpecial: UInt32, _ ids: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                         _ n: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let tokenizer = try resolveTokenizer(tokenizer)
        let n = try Arguments.required(n, "n")
        n.pointee = 0
        let text = try Arguments.text(text, length: length, "text")
        let values = try tokenizer.encode(text, addSpecialTokens: addSpecial != 0, parseSpecial: parseSpecial != 0)
        try copyIDs(values, into: ids, capacity: capacity, count: n, "the text has")
    }
}

@_cdecl("lmx_token_to_piece")
public func lmx_token_to_piece(_ tokenizer: OpaquePointer?, _ id: Int32, _ buffer: UnsafeMutablePointer<CChar>?,
                               _ capacity: Int, _ needed: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let tokenizer = try resolveTokenizer(tokenizer)
        let needed = try Arguments.required(needed, "needed")
        guard let bytes = tokenizer.tokenToBytes(id) else {
            throw LoRAMixerError.invalidArgument("'id' \(id) is not a token of this tokenizer (\(tokenizer.vocabularySize) ids, up to \(tokenizer.largestID ?? -1))")
        }
        needed.pointee = bytes.count
        let capacity = Arguments.capacity(capacity)
        guard capacity > 0 else { return }
        guard let buffer else { throw LoRAMixerError.invalidArgument("'buf' must not be NULL when capacity is \(capacity)") }
        let length = min(bytes.count, capacity - 1)
        for i in 0..<length { buffer[i] = CChar(bitPattern: bytes[i]) }
        buffer[length] = 0
    }
}

@_cdecl("lmx_detokenize")
public func lmx_detokenize(_ tokenizer: OpaquePointer?, _ ids: UnsafePointer<Int32>?, _ count: Int, _ skipSpecial: UInt32,
                           _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                           _ needed: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let tokenizer = try resolveTokenizer(tokenizer)
        let needed = try Arguments.required(needed, "needed")
        let capacity = Arguments.capacity(capacity)
        if capacity > 0, buffer == nil { throw LoRAMixerError.invalidArgument("'buf' must not be NULL when capacity is \(capacity)") }
        let ids = try Arguments.array(ids, count: count, limit: Int.max / 8, "ids", allowEmpty: true)
        try copyString(tokenizer.decode(ids, skipSpecialTokens: skipSpecial != 0), into: buffer, capacity: capacity, needed: needed)
    }
}

/// A TokenTextStream behind a handle: push works on a copy that is kept only when its text was
/// delivered, so a buffer too small loses nothing.
final class TextStreamBox {
    var stream: TokenTextStream
    init(_ stream: TokenTextStream) { self.stream = stream }
}

@_cdecl("lmx_text_stream_create")
public func lmx_text_stream_create(_ tokenizer: OpaquePointer?, _ skipSpecial: UInt32,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> lmx_status {
    withStatus {
        let out = try Arguments.required(out, "out")
        out.pointee = nil
        let tokenizer = try resolveTokenizer(tokenizer)
        out.pointee = Handles.make(TextStreamBox(TokenTextStream(tokenizer: tokenizer, skipSpecialTokens: skipSpecial != 0)),
                                   .textStream)
    }
}

@_cdecl("lmx_text_stream_free")
public func lmx_text_stream_free(_ stream: OpaquePointer?) {
    Handles.release(stream, .textStream)
}

@_cdecl("lmx_text_stream_push")
public func lmx_text_stream_push(_ stream: OpaquePointer?, _ id: Int32, _ buffer: UnsafeMutablePointer<CChar>?,
                                 _ capacity: Int, _ needed: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let box = try Handles.resolve(stream, .textStream, as: TextStreamBox.self, "stream")
        let needed = try Arguments.required(needed, "needed")
        var next = box.stream
        let text = next.append(id)
        try copyWhole(Array(text.utf8), into: buffer, capacity: capacity, needed: needed)
        box.stream = next
    }
}

@_cdecl("lmx_text_stream_finish")
public func lmx_text_stream_finish(_ stream: OpaquePointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                   _ needed: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let box = try Handles.resolve(stream, .textStream, as: TextStreamBox.self, "stream")
        let needed = try Arguments.required(needed, "needed")
        var next = box.stream
        let text = next.finish()
        try copyWhole(Array(text.utf8), into: buffer, capacity: capacity, needed: needed)
        box.stream = next
    }
}

/// The messages of a C array as the chat template's JSON objects; a NULL or invalid string is
/// refused naming its index.
func chatMessages(_ messages: UnsafePointer<lmx_chat_message>?, count: Int) throws -> [JSONValue] {
    let items = try Arguments.array(messages, count: count, limit: Int.max / 32, "messages", allowEmpty: true)
    var pairs: [(role: String, content: String)] = []
    pairs.reserveCapacity(items.count)
    for (index, message) in items.enumerated() {
        func field(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
            guard let pointer else { throw LoRAMixerError.invalidArgument("messages[\(index)].\(name) must not be NULL") }
            return try Arguments.text(pointer, length: strlen(pointer), "messages[\(index)].\(name)")
        }
        pairs.append((role: try field(message.role, "role"), content: try field(message.content, "content")))
    }
    return Tokenizer.messages(pairs)
}

@_cdecl("lmx_chat_apply_template")
public func lmx_chat_apply_template(_ tokenizer: OpaquePointer?, _ messages: UnsafePointer<lmx_chat_message>?, _ count: Int,
                                    _ addGenerationPrompt: UInt32, _ buffer: UnsafeMutablePointer<CChar>?,
                                    _ capacity: Int, _ needed: UnsafeMutablePointer<Int>?) -> lmx_status {
    withStatus {
        let tokenizer = try resolveTokenizer(tokenizer)
        let needed = try Arguments.required(needed, "needed")
        let capacity = Arguments.capacity(capacity)
        if capacity > 0, buffer == nil { throw LoRAMixerError.invalidArgument("'buf' must not be NULL when capacity is \(capacity)") }
        let messages = try chatMessages(messages, count: count)
        let text = try tokenizer.applyChatTemplate(messages: messages, addGenerationPrompt: addGenerationPrompt != 0)
        try copyString(text, into: buffer, capacity: capacity, needed: needed)
    }
}
