import Foundation
import LoRAMixer

/// Opaque C handles are retained Swift objects. Every live handle is registered with its kind, so
/// a freed, foreign or wrong-kind pointer is refused with a message instead of crashing.
enum Handles {
    enum Kind: String {
        case model = "lmx_model"
        case mixer = "lmx_mixer"
        case session = "lmx_session"
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var live: [UnsafeMutableRawPointer: Kind] = [:]

    static func make(_ object: AnyObject, _ kind: Kind) -> OpaquePointer {
        let pointer = Unmanaged.passRetained(object).toOpaque()
        lock.withLock { live[pointer] = kind }
        return OpaquePointer(pointer)
    }

    static func resolve<T: AnyObject>(_ handle: OpaquePointer?, _ kind: Kind, as type: T.Type, _ name: String) throws -> T {
        guard let handle else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL") }
        let pointer = UnsafeMutableRawPointer(handle)
        let found = lock.withLock { live[pointer] }
        guard found == kind else {
            throw LoRAMixerError.invalidArgument(found.map { "'\(name)' is a \($0.rawValue), expected a \(kind.rawValue)" }
                ?? "'\(name)' is not a live \(kind.rawValue) handle (freed, or never created by this library)")
        }
        return Unmanaged<T>.fromOpaque(pointer).takeUnretainedValue()
    }

    /// Releases a handle; NULL and unknown pointers are ignored (a double free is a no-op, not a crash).
    static func release(_ handle: OpaquePointer?, _ kind: Kind) {
        guard let handle else { return }
        let pointer = UnsafeMutableRawPointer(handle)
        let removed = lock.withLock { () -> Bool in
            guard live[pointer] == kind else { return false }
            live[pointer] = nil
            return true
        }
        if removed { Unmanaged<AnyObject>.fromOpaque(pointer).release() }
    }
}
