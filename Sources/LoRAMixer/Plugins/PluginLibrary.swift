internal import CKernels
internal import CLoRAMixer
import Glibc

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

    /// The plugin file, open from before the policy check until after `dlclose`: the library is
    /// loaded from it (`/proc/self/fd/N`), so what was checked is what runs, and while it is open
    /// no other file can be loaded under the same `/proc/self/fd/N` name.
    private let file: Int32

    /// Opens `path` once, checks that open file against `policy`, loads that same file and
    /// validates its descriptor. A `path` without `/` names a file in the current directory: it
    /// is never looked up on the library search path.
    init(path: String, policy: PluginPolicy) throws {
        // O_NONBLOCK: opening a FIFO must not hang (it is then refused as not a regular file).
        let opened = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard opened >= 0 else { throw posixError("\(path): cannot open plugin file") }
        do {
            try policy.check(descriptor: opened, path: path)
        } catch {
            close(opened)
            throw error
        }
        let (handle, file) = try Self.load(descriptor: opened, path: path)
        self.file = file
        func fail(_ error: LoRAMixerError) -> LoRAMixerError {
            dlclose(handle)
            close(file)
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
        close(file)
    }

    /// `dlopen("/proc/self/fd/N")` of the open file. The dynamic loader first matches a name
    /// against the libraries already loaded, so if a library loaded earlier under this very name
    /// is still resident (one that could not be unloaded, from a file since closed), the file is
    /// moved to another descriptor number first. Takes `descriptor` over: returns the handle and
    /// the one descriptor left open, or throws with every descriptor closed.
    private static func load(descriptor: Int32, path: String) throws -> (UnsafeMutableRawPointer, Int32) {
        var current = descriptor
        var superseded: [Int32] = []
        defer { superseded.forEach { close($0) } }
        for _ in 0..<16 {
            let name = "/proc/self/fd/\(current)"
            if let resident = dlopen(name, RTLD_LAZY | RTLD_NOLOAD) {
                // Found by name (stale: refused) or by device and inode (this very file, loaded already).
                let stale = loadedName(resident) == name
                dlclose(resident)
                if stale {
                    let moved = fcntl(current, F_DUPFD_CLOEXEC, current + 1)
                    guard moved >= 0 else {
                        let failure = posixError("\(path): cannot duplicate the plugin file descriptor")
                        close(current)
                        throw failure
                    }
                    superseded.append(current)
                    current = moved
                    continue
                }
            }
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else {
                let failure = LoRAMixerError.plugin("\(path): cannot load as a shared library: \(dlerrorText())")
                close(current)
                throw failure
            }
            return (handle, current)
        }
        close(current)
        throw LoRAMixerError.plugin("\(path): cannot load: every descriptor tried is the name of another resident library")
    }

    /// The name the dynamic loader knows a loaded library by (`link_map.l_name`).
    private static func loadedName(_ handle: UnsafeMutableRawPointer) -> String? {
        lmxk_dl_name(handle).map { String(cString: $0) }
    }

    private static func dlerrorText() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }
}
