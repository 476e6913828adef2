/// The one error type the core throws. `kind` maps one-to-one onto the C ABI's status codes;
/// `message` is what `lmx_last_error()` shows, so it names the file, tensor or argument and says
/// what was expected and what was found.
public struct LoRAMixerError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case invalidArgument = "invalid argument"
        case io = "i/o error"
        case format = "format error"
        case shape = "shape mismatch"
        case plugin = "plugin error"
        case abi = "ABI mismatch"
        case outOfMemory = "out of memory"
        case state = "invalid state"
        case notFound = "not found"
        case cancelled = "cancelled"
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    public static func invalidArgument(_ message: String) -> Self { .init(.invalidArgument, message) }
    public static func io(_ message: String) -> Self { .init(.io, message) }
    public static func format(_ message: String) -> Self { .init(.format, message) }
    public static func shape(_ message: String) -> Self { .init(.shape, message) }
    public static func state(_ message: String) -> Self { .init(.state, message) }
    public static func notFound(_ message: String) -> Self { .init(.notFound, message) }
    public static func outOfMemory(_ message: String) -> Self { .init(.outOfMemory, message) }
    public static func plugin(_ message: String) -> Self { .init(.plugin, message) }
}
