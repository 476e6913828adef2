import CLoRAMixer
@_spi(CABI) import LoRAMixer

/// Runs one entry point's body: a thrown error becomes its status code and the thread's last
/// error message.
func withStatus(_ function: String = #function, _ body: () throws -> Void) -> lmx_status {
    do {
        try body()
        return lmx_status(LMX_OK)
    } catch let error as LoRAMixerError {
        LastError.set("\(entryName(function)): \(error.message)")
        return error.kind.cStatus
    } catch {
        LastError.set("\(entryName(function)): \(error)")
        return LoRAMixerError.Kind.io.cStatus  // not the core's own: a system or library failure
    }
}

/// `lmx_model_load(_:_:_:)` -> `lmx_model_load`
private func entryName(_ function: String) -> String {
    String(function.prefix { $0 != "(" })
}
