internal import CThreads

#if canImport(Glibc)
import Glibc
#endif

/// Starts a detached POSIX thread running `body`; false when the system refuses one.
/// (Our own threads, not Dispatch's pool: connection threads block for long stretches.)
/// - Parameter name: the thread's name in `top -H`, `ps -L`, `perf` and
///   `/proc/PID/task/*/comm` (Linux keeps its first 15 bytes).
@discardableResult
public func spawnThread(name: String, stackBytes: Int = 512 * 1024, _ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let body: @Sendable () -> Void = {
        _ = cthreads_name_self(name)
        body()
    }
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setstacksize(&attr, stackBytes)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
        return nil
    }, box)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
        // pthread_create returns its error; callers report `errno`.
        errno = rc
        return false
    }
    return true
}

/// Nanoseconds on the monotonic clock (immune to wall-clock changes).
@inline(__always)
public func monotonicNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// Milliseconds on the monotonic clock.
@inline(__always)
public func monotonicMs() -> Int64 { monotonicNanoseconds() / 1_000_000 }
