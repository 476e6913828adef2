internal import CLoRAMixer

extension LoRAMixerError.Kind {
    /// The C ABI's `lmx_status` code for this kind (`LMX_ERR_*`).
    @_spi(CABI) public var cStatus: Int32 {
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
        return Int32(code)
    }
}
