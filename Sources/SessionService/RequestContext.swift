#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The id of the request being handled on this thread. Each request is handled start to
/// finish on its connection's thread, so a thread-local carries the id into every log line
/// without threading it through every call.
public enum RequestContext {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { pointer in
            if let pointer { Unmanaged<Box>.fromOpaque(pointer).release() }
        }
        return k
    }()

    private final class Box {
        let id: String
        init(_ id: String) { self.id = id }
    }

    /// The current request id, or nil outside a request.
    public static var requestId: String? {
        guard let p = pthread_getspecific(key) else { return nil }
        return Unmanaged<Box>.fromOpaque(p).takeUnretainedValue().id
    }

    /// Runs `body` with `id` as the current request id.
    public static func with<T>(_ id: String, _ body: () -> T) -> T {
        let box = Unmanaged.passRetained(Box(id)).toOpaque()
        pthread_setspecific(key, box)
        defer {
            pthread_setspecific(key, nil)
            Unmanaged<Box>.fromOpaque(box).release()
        }
        return body()
    }

    /// A caller's `X-Request-Id` when it is sane (1–128 visible ASCII characters), else a new one.
    public static func id(from header: String?) -> String {
        if let header, (1...128).contains(header.utf8.count), header.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return header
        }
        // A random per-process prefix and a counter: unique, and no syscall per request.
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        let hex = String(n, radix: 16)
        return prefix + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
    }

    private static let prefix: String = {
        let v = UInt64.random(in: 0...UInt64.max) & 0xFFFF_FFFF_FFFF
        let hex = String(v, radix: 16)
        return String(repeating: "0", count: 12 - hex.count) + hex
    }()
    private static let counter = Atomic<UInt64>(0)
}
