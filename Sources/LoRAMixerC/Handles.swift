import LoRAMixer
import Synchronization

/// Opaque C handles are not object addresses but ids: every handle the library creates gets a new
/// id from a 64-bit counter that is never reused, so a freed handle stays invalid even after its
/// object's memory was reused by a new object. The table maps live ids to their object and kind;
/// a freed, foreign or wrong-kind pointer is refused with a message instead of crashing.
enum Handles {
    enum Kind: String {
        case model = "lmx_model"
        case mixer = "lmx_mixer"
        case session = "lmx_session"
        case tokenizer = "lmx_tokenizer"
        case textStream = "lmx_text_stream"
    }

    private struct Entry {
        let kind: Kind
        let object: AnyObject
    }

    private struct Table {
        var next: UInt = 1
        var live: [UInt: Entry] = [:]
    }

    /// Low bits every handle carries, so that small integers and most stray pointers are not ids.
    private static let tag: UInt = 0x4C4D58  // "LMX"
    private static let tagBits: UInt = 24

    private static let table = Mutex(Table())

    static func make(_ object: AnyObject, _ kind: Kind) -> OpaquePointer {
        let id = table.withLock { table -> UInt in
            let id = table.next
            table.next += 1
            table.live[id] = Entry(kind: kind, object: object)
            return id
        }
        return OpaquePointer(bitPattern: id << tagBits | tag)!
    }

    private static func id(_ handle: OpaquePointer) -> UInt? {
        let value = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle)))
        return value & ((1 << tagBits) - 1) == tag ? value >> tagBits : nil
    }

    /// The object behind a live handle of `kind`; the caller holds a strong reference for the call,
    /// so a concurrent free of the handle cannot destroy it underneath.
    static func resolve<T: AnyObject>(_ handle: OpaquePointer?, _ kind: Kind, as type: T.Type, _ name: String) throws -> T {
        guard let handle else { throw LoRAMixerError.invalidArgument("'\(name)' must not be NULL") }
        let entry = id(handle).flatMap { id in table.withLock { $0.live[id] } }
        guard let entry, entry.kind == kind, let object = entry.object as? T else {
            throw LoRAMixerError.invalidArgument(entry.map { "'\(name)' is a \($0.kind.rawValue), expected a \(kind.rawValue)" }
                ?? "'\(name)' is not a live \(kind.rawValue) handle (freed, or never created by this library)")
        }
        return object
    }

    /// Releases a handle; NULL and unknown pointers are ignored (a double free is a no-op, not a crash).
    /// The object is dropped after the lock is released (its deinit may run plugin code).
    static func release(_ handle: OpaquePointer?, _ kind: Kind) {
        guard let handle, let id = id(handle) else { return }
        let removed: Entry? = table.withLock { table in
            guard table.live[id]?.kind == kind else { return nil }
            return table.live.removeValue(forKey: id)
        }
        withExtendedLifetime(removed) {}
    }
}
