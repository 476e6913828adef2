import Glibc

/// printf-style formatting by the C library (`vsnprintf`), for the few numbers lmx prints with a
/// fixed format (`%.4f`, `%.2e`, `%02ld`): the same bytes as Foundation's `String(format:)`, which
/// lmx no longer links (Foundation brings ICU, some 40 MB installed). The C locale applies (lmx never
/// calls setlocale), so the decimal point is always `.`. Integers go as `Int` with `%ld`.
func cFormat(_ format: String, _ arguments: CVarArg...) -> String {
    // A va_list is read once: one for the length, a fresh one for the text.
    let length = withVaList(arguments) { vsnprintf(nil, 0, format, $0) }
    guard length > 0 else { return "" }
    var buffer = [CChar](repeating: 0, count: Int(length) + 1)
    _ = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
    return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
