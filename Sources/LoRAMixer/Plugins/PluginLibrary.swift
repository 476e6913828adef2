internal import CLoRAMixer
import Foundation

/// A loaded plugin shared library. Everything a plugin registered holds it, so the library stays
/// open while any of its experts is alive; the last release calls the plugin's shutdown (when its
/// init succeeded) and closes it.
public final class PluginLibrary: @unchecked Sendable {
    public let path: String
    public let id: String
    public let version: String
    public let summary: String
    public let license: String
    private let handle: UnsafeMutableRawPointer
    private let shutdown: (@convention(c) () -> Void)?
    /// Set once init succeeded: only then does shutdown run.
    var initialized = false
    let initialize: @convention(c) (UnsafePointer<lmx_host_api>?, OpaquePointer?, UnsafePointer<CChar>?) -> lmx_status

    /// Opens `path` and validates its descriptor, after `policy` accepted the file.
    init(path: String, policy: PluginPolicy) throws {
        try policy.check(path: path)
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw LoRAMixerError.plugin("\(path): cannot load as a shared library: \(Self.dlerrorText())")
        }
        func fail(_ error: LoRAMixerError) -> LoRAMixerError {
            dlclose(handle)
            return error
        }
        guard let symbol = dlsym(handle, "lmx_plugin_entry") else {
            throw fail(.plugin("\(path): no 'lmx_plugin_entry' symbol (not a loramixer plugin)"))
        }
        let entry = unsafeBitCast(symbol, to: (@convention(c) () -> UnsafePointer<lmx_plugin_descriptor>?).self)
        guard let descriptor = entry() else {
            throw fail(.plugin("\(path): lmx_plugin_entry returned NULL"))
        }
        // Only the first two fields are known to exist until their values say so.
        let (abi, size) = (descriptor.pointee.abi_version, descriptor.pointee.struct_size)
        let hostMajor = UInt32(LMX_PLUGIN_ABI_MAJOR)
        guard abi >> 16 == hostMajor else {
            throw fail(LoRAMixerError(.abi, "\(path): plugin ABI version \(abi >> 16).\(abi & 0xffff), but this host supports \(hostMajor).x"))
        }
        // Version-0 fields must be there; fields appended later read as zero from an older plugin.
        guard Int(size) >= CInterop.pluginDescriptorMinimum else {
            throw fail(LoRAMixerError(.abi, "\(path): plugin descriptor struct_size \(size) is smaller than the \(CInterop.pluginDescriptorMinimum) bytes of ABI \(hostMajor).0 (LMX_PLUGIN_DESCRIPTOR_MIN_SIZE)"))
        }
        let d = try CInterop.readStruct(UnsafeRawPointer(descriptor), declaredSize: size, minimum: 0,
                                        defaults: lmx_plugin_descriptor(), "lmx_plugin_descriptor")
        guard let initialize = d.`init` else {
            throw fail(.plugin("\(path): the plugin descriptor has no init function"))
        }
        guard let id = d.id.flatMap({ String(validatingCString: $0) }), !id.isEmpty else {
            throw fail(.plugin("\(path): the plugin descriptor has no id"))
        }
        self.path = path
        self.handle = handle
        self.id = id
        self.version = d.version.flatMap { String(validatingCString: $0) } ?? ""
        self.summary = d.description.flatMap { String(validatingCString: $0) } ?? ""
        self.license = d.license.flatMap { String(validatingCString: $0) } ?? ""
        self.shutdown = d.shutdown
        self.initialize = initialize
    }

    deinit {
        if initialized { shutdown?() }
        dlclose(handle)
    }

    private static func dlerrorText() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }
}
