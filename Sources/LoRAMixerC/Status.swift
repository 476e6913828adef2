import CLoRAMixer
import LoRAMixer

extension LoRAMixerError.Kind {
    var status: lmx_status {
        let code = switch self {
        case .invalidArgument: LMX_ERR_INVALID_ARGUMENT
        case .io: LMX_ERR_IO
        case .format: LMX_ERR_FORMAT
        case .shape: LMX_ERR_SHAPE
        case .plugin: LMX_ERR_PLUGIN
        case .abi: LMX_ERR_ABI
        case .outOfMemory: LMX_ERR_OUT_OF_MEMORY
        case .state: LMX_ERR_STATE
        case .notFound: LMX_ERR_NOT_FOUND
        case .cancelled: LMX_ERR_CANCELLED
        }
        return lmx_status(code)
    }
}

/// Runs one entry point's body: a thrown error becomes its status code and the thread's last
/// error message.
func withStatus(_ function: String = #function, _ body: () throws -> Void) -> lmx_status {
    do {
        try body()
        return lmx_status(LMX_OK)
    } catch let error as LoRAMixerError {
        LastError.set("\(entryName(function)): \(error.message)")
        return error.kind.status
    } catch {
        LastError.set("\(entryName(function)): \(error)")
        return lmx_status(LMX_ERR_INVALID_ARGUMENT)
    }
}

/// `lmx_model_load(_:_:_:)` -> `lmx_model_load`
private func entryName(_ function: String) -> String {
    String(function.prefix { $0 != "(" })
}
