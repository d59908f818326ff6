#if canImport(Glibc)
import Glibc
#endif

/// A value guarded by a pthread mutex.
///
/// Why not `Synchronization.Mutex`: on Linux it parks threads with raw futex calls that
/// ThreadSanitizer cannot see, so every `--sanitize=thread` run reported false races
/// inside its critical sections. TSan intercepts pthread mutexes, so this lock keeps the
/// sanitizer meaningful; uncontended it costs the same (one atomic on lock and unlock).
///
/// `@unchecked Sendable`: `value` is only touched between `pthread_mutex_lock` and
/// `pthread_mutex_unlock`, and the mutex lives in stable heap memory of its own.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    @inline(__always)
    public func withLock<T, E: Error>(_ body: (inout Value) throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
