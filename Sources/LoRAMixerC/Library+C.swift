import CLoRAMixer
import LoRAMixer

private let versionString: StaticString = "0.1.0"

@_cdecl("lmx_version")
public func lmx_version() -> UnsafePointer<CChar> {
    UnsafeRawPointer(versionString.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("lmx_version_number")
public func lmx_version_number() -> UInt32 {
    UInt32(LMX_VERSION_MAJOR * 10000 + LMX_VERSION_MINOR * 100 + LMX_VERSION_PATCH)
}

@_cdecl("lmx_status_string")
public func lmx_status_string(_ status: lmx_status) -> UnsafePointer<CChar> {
    let text: StaticString = switch Int(status) {
    case LMX_OK: "ok"
    case LMX_ERR_INVALID_ARGUMENT: "invalid argument"
    case LMX_ERR_IO: "i/o error"
    case LMX_ERR_FORMAT: "format error"
    case LMX_ERR_SHAPE: "shape mismatch"
    case LMX_ERR_PLUGIN: "plugin error"
    case LMX_ERR_ABI: "ABI mismatch"
    case LMX_ERR_OUT_OF_MEMORY: "out of memory"
    case LMX_ERR_STATE: "invalid state"
    case LMX_ERR_NOT_FOUND: "not found"
    case LMX_ERR_CANCELLED: "cancelled"
    default: "unknown status"
    }
    return UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("lmx_last_error")
public func lmx_last_error() -> UnsafePointer<CChar> {
    LastError.current
}
