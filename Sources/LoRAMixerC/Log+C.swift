import CLoRAMixer
@_spi(CABI) import LoRAMixer

/// A C pointer the host vouches may be used from any thread (the log callback's user_data).
private struct SendablePointer: @unchecked Sendable {
    let value: UnsafeMutableRawPointer?
}

@_cdecl("lmx_set_log_callback")
public func lmx_set_log_callback(_ callback: lmx_log_callback?, _ userData: UnsafeMutableRawPointer?) {
    guard let callback else {
        LogSink.set(nil)
        return
    }
    let data = SendablePointer(value: userData)
    LogSink.set { level, source, message in
        source.withCString { source in
            message.withCString { message in callback(level, source, message, data.value) }
        }
    }
}
