#if canImport(Glibc)
import Glibc
#endif
import CEpoll
import Primitives

/// Keep-alive connections waiting for their next request, watched by one epoll thread
/// instead of one blocked thread each (10,000 idle connections cost 376 MB as threads; see
/// README, "Concurrency model").
///
/// A connection's worker parks it here once no request arrived for
/// `idleHandoffDelayMs` (at once after a request the loop answers itself, see
/// `InlineRequests`): the fd is registered `EPOLLIN | EPOLLRDHUP | EPOLLONESHOT` and
/// nothing else is kept (between requests a connection has no buffered bytes and no parser
/// state). When it becomes readable the loop takes it out and hands it to `onReadable`
/// (which answers it on this thread or has a worker run the request loop again); when its
/// idle deadline passes, or shutdown begins (the server's wake pipe), the loop closes it and
/// calls `onClosed`.
///
/// Every change to the parked set and every arming of a registration happens under one
/// lock, so an fd the loop closes can never be re-registered under a stale entry: a number
/// reused by a later connection is parked with a new token, and old expiry entries no
/// longer match. A connection taken out keeps its registration, disarmed by
/// `EPOLLONESHOT` (so it reports nothing while a worker, or the thread that answers a request
/// the loop started, `LaterRequests`, owns the fd); the owner's `close`
/// removes it outside the lock, which is safe because epoll keys a registration on the open
/// file, not the number: a reused number is a new file, and `cepoll_arm` adds it afresh.
///
/// Deadlines: a worker parks a connection with the deadline its idle wait began with (its
/// last answer plus `IDLE_TIMEOUT_MS`), so `idleHandoffDelayMs` after that answer; a
/// connection parked at once (after an inline route) gets its answer's time plus the same
/// timeout. The FIFO is then sorted to within `idleHandoffDelayMs`, and a connection may be
/// closed that much after its deadline, never before.
///
/// `@unchecked Sendable`: `state` is a `Locked`; the fds are immutable after init.
final class IdleConnections: @unchecked Sendable {
    private let epollFd: Int32
    /// Written when the first connection is parked into an empty set, so a loop sleeping
    /// without a deadline learns there is now one.
    private let notifyReadFd: Int32
    private let notifyWriteFd: Int32
    private let shutdownFd: Int32
    private let state = Locked(State())

    private struct Parked {
        var token: UInt64
        var peerIsLoopback: Bool
    }

    private struct Expiry {
        var fd: Int32
        var token: UInt64
        var deadline: Int64
    }

    private struct State {
        var parked: [Int32: Parked] = [:]
        /// Deadlines in the order connections were parked. Every park adds the same idle
        /// timeout to the time of its last response, so this FIFO is (to the millisecond)
        /// sorted: a queue is the whole timer structure. Entries of connections that left
        /// stay until they reach the front and are skipped there (their token is stale).
        var expiries: [Expiry] = []
        var head = 0
        var nextToken: UInt64 = 0
        var closed = false
    }

    /// - Parameter shutdownFd: readable once shutdown begins (the server's wake pipe).
    init(shutdownFd: Int32) throws {
        epollFd = cepoll_create()
        guard epollFd >= 0 else { throw SocketError(operation: "epoll_create1", errno: errno) }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            let e = errno
            close(epollFd)
            throw SocketError(operation: "pipe2", errno: e)
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        notifyReadFd = fds[0]
        notifyWriteFd = fds[1]
        self.shutdownFd = shutdownFd
        for fd in [shutdownFd, notifyReadFd] {
            guard cepoll_add(epollFd, fd, cepoll_in) == 0 else {
                let e = errno
                for fd in [epollFd, notifyReadFd, notifyWriteFd] { close(fd) }
                throw SocketError(operation: "epoll_ctl", errno: e)
            }
        }
    }

    deinit {
        // The loop closes epollFd when it ends; if it never ran, close it here.
        if !state.withLock({ $0.closed }) { close(epollFd) }
        close(notifyReadFd)
        close(notifyWriteFd)
    }

    /// Connections parked now.
    var count: Int { state.withLock { $0.parked.count } }

    /// Idle deadlines queued now, stale ones included (for tests: the queue stays bounded).
    var queuedDeadlines: Int { state.withLock { $0.expiries.count - $0.head } }

    /// Hands `fd` to the loop until it is readable or `deadline` (monotonic ms) passes.
    /// - Returns: false when the loop no longer takes connections (shutdown) or epoll
    ///   refused it; the caller still owns the fd then and closes it.
    func park(_ fd: Int32, peerIsLoopback: Bool, deadline: Int64) -> Bool {
        let wasEmpty = state.withLock { s -> Bool? in
            guard !s.closed else { return nil }
            guard cepoll_arm(epollFd, fd, cepoll_in | cepoll_rdhup | cepoll_oneshot) == 0 else { return nil }
            s.nextToken &+= 1
            s.parked[fd] = Parked(token: s.nextToken, peerIsLoopback: peerIsLoopback)
            let wasEmpty = s.head == s.expiries.count
            // Connections that park and wake often leave stale entries behind until their
            // deadline comes up (IDLE_TIMEOUT_MS later); past a bound, keep only live ones
            // (order kept). After a compaction the queue holds at most the parked
            // connections, so the next one is far off: amortised O(1) per park.
            if s.expiries.count - s.head > 4 * s.parked.count + 4096 {
                let parked = s.parked
                s.expiries = s.expiries[s.head...].filter { parked[$0.fd]?.token == $0.token }
                s.head = 0
            }
            s.expiries.append(Expiry(fd: fd, token: s.nextToken, deadline: deadline))
            return wasEmpty
        }
        guard let wasEmpty else { return false }
        if wasEmpty {
            var byte: UInt8 = 1
            _ = write(notifyWriteFd, &byte, 1)
        }
        return true
    }

    /// The loop: runs on its own thread until shutdown begins, then closes every parked
    /// connection and returns.
    /// - Parameters:
    ///   - onReadable: a parked connection has bytes (or its peer closed after sending
    ///     some): the callee now owns the fd. Called on the loop thread; must not block.
    ///   - onClosed: the loop closed a parked connection (idle timeout, peer gone, shutdown).
    func run(onReadable: (Int32, Bool) -> Void, onClosed: () -> Void) {
        let capacity = 256
        var fds = [Int32](repeating: -1, count: capacity)
        var events = [UInt32](repeating: 0, count: capacity)
        while true {
            let timeout = state.withLock { s -> Int32 in
                guard s.head < s.expiries.count else { return -1 }
                let wait = s.expiries[s.head].deadline - monotonicMs()
                return Int32(clamping: max(0, wait))
            }
            let n = cepoll_wait(epollFd, &fds, &events, Int32(capacity), timeout)
            if n < 0 && errno != EINTR {
                // Cannot happen with valid arguments; never spin on it.
                sleepMs(10)
            }
            for i in 0..<max(0, Int(n)) {
                let fd = fds[i]
                let flags = events[i]
                if fd == shutdownFd {
                    closeAll(onClosed: onClosed)
                    return
                }
                if fd == notifyReadFd {
                    var scratch = [UInt8](repeating: 0, count: 64)
                    while read(notifyReadFd, &scratch, scratch.count) > 0 {}
                    continue
                }
                guard let parked = take(fd) else { continue }
                // Peer gone with nothing left to read: close here rather than wake a worker
                // (10,000 clients leaving at once must not create 10,000 threads).
                if flags & (cepoll_rdhup | cepoll_hup | cepoll_err) != 0, !hasPendingBytes(fd) {
                    Glibc.shutdown(fd, Int32(SHUT_RDWR))
                    close(fd)
                    onClosed()
                    continue
                }
                onReadable(fd, parked.peerIsLoopback)
            }
            let expired = state.withLock { s -> Int in
                let now = monotonicMs()
                var closed = 0
                while s.head < s.expiries.count, s.expiries[s.head].deadline <= now {
                    let e = s.expiries[s.head]
                    s.head += 1
                    guard s.parked[e.fd]?.token == e.token else { continue }
                    s.parked[e.fd] = nil
                    cepoll_del(epollFd, e.fd)
                    Glibc.shutdown(e.fd, Int32(SHUT_RDWR))
                    close(e.fd)
                    closed += 1
                }
                if s.head == s.expiries.count {
                    s.expiries.removeAll(keepingCapacity: s.expiries.count < 4096)
                    s.head = 0
                } else if s.head > 1024, s.head * 2 > s.expiries.count {
                    s.expiries.removeFirst(s.head)
                    s.head = 0
                }
                return closed
            }
            for _ in 0..<expired { onClosed() }
        }
    }

    /// Removes a parked connection that epoll reported; nil if it is no longer parked. Its
    /// one-shot registration fired and stays, disarmed: parking it again re-arms it (one
    /// `epoll_ctl`), and closing the fd removes it.
    private func take(_ fd: Int32) -> Parked? {
        state.withLock { s in s.parked.removeValue(forKey: fd) }
    }

    private func hasPendingBytes(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if n < 0 && errno == EINTR { continue }
            return n > 0
        }
    }

    private func closeAll(onClosed: () -> Void) {
        let closed = state.withLock { s -> Int in
            s.closed = true
            for fd in s.parked.keys {
                Glibc.shutdown(fd, Int32(SHUT_RDWR))
                close(fd)
            }
            let count = s.parked.count
            s.parked = [:]
            s.expiries = []
            s.head = 0
            close(epollFd)
            return count
        }
        for _ in 0..<closed { onClosed() }
    }
}
