#if canImport(Glibc)
import Glibc
#endif
import Primitives
import Synchronization

/// An HTTP/1.1 server on POSIX sockets: one accept thread, a pool of worker threads that
/// serve connections (handlers called synchronously on the worker), and one epoll thread
/// that holds idle keep-alive connections (`IdleConnections`).
///
/// Why blocking workers: the handler does blocking work (SQLite, HTTP calls to DynamoDB
/// and Cognigy) that must not stall other connections, and on a 2-core machine a blocking
/// thread per busy keep-alive connection measured faster than handing each request from a
/// poll loop to a pool. Why the idle loop: a thread per *idle* connection cost 376 MB for
/// 10,000 of them; parked in epoll they cost a registration each (README, "Concurrency
/// model"). A worker keeps its connection for `idleHandoffDelayMs` after a response, so a
/// busy client pays no hand-off. Stalled clients cost a parked thread each until their
/// header timeout, not a core.
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    let handler: any HTTPHandler
    /// `handler.answersLater`, asked once: without it a POST costs the loop no scan and a
    /// worker no route lookup (`LaterRequests`).
    public let answersLater: Bool
    private let listenFd: Int32
    /// The port actually bound (useful with port 0).
    public let port: Int
    /// Read end of the wake pipe: readable once shutdown begins, watched by every idle wait.
    let wakeFd: Int32
    private let wakeWriteFd: Int32
    /// Readable once the drain is over: stops the accept loop (which keeps accepting while
    /// in-flight requests finish, so `/ready` can say 503 to whoever asks meanwhile).
    private let acceptStopFd: Int32
    private let acceptStopWriteFd: Int32
    private let acceptFunction: @Sendable (Int32) -> Int32
    private let acceptErrorHandler: (@Sendable (Int32) -> Void)?
    private let acceptErrors = Atomic<Int>(0)
    /// Request body bytes buffered now by all connections (see `maxBufferedBodyBytes`).
    private let bufferedBodyBytes = Atomic<Int>(0)
    private let dates = HTTPDateCache()
    private let state = Locked(State())
    private let stopping = Atomic<Bool>(false)
    let idle: IdleConnections
    let workers: WorkerPool
    private let protocolErrors = Atomic<Int>(0)
    private let laterAnswers = Atomic<Int>(0)
    private let rejectedConnections = Atomic<Int>(0)

    private struct State {
        var active = 0
        /// True until `start()` runs the loop, and again once it has ended.
        var acceptLoopDone = true
    }

    /// Binds and listens; call `start()` to begin accepting.
    /// - Parameters:
    ///   - accept: accept(2) on the listening socket (tests inject failures).
    ///   - onAcceptError: told the errno of each failed accept other than EINTR/EAGAIN.
    public init(
        configuration: HTTPServerConfiguration, handler: any HTTPHandler,
        accept: @escaping @Sendable (Int32) -> Int32 = { Glibc.accept($0, nil, nil) },
        onAcceptError: (@Sendable (Int32) -> Void)? = nil
    ) throws {
        self.configuration = configuration
        self.handler = handler
        self.answersLater = handler.answersLater
        self.acceptFunction = accept
        self.acceptErrorHandler = onAcceptError
        (listenFd, port) = try Sockets.listen(host: configuration.host, port: configuration.port, backlog: configuration.backlog)
        var fds: [Int32] = [0, 0, 0, 0]
        guard pipe(&fds[0]) == 0, pipe(&fds[2]) == 0 else {
            close(listenFd)
            throw SocketError(operation: "pipe2", errno: errno)
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        wakeFd = fds[0]
        wakeWriteFd = fds[1]
        acceptStopFd = fds[2]
        acceptStopWriteFd = fds[3]
        do {
            idle = try IdleConnections(shutdownFd: fds[0])
        } catch {
            for fd in fds + [listenFd] { close(fd) }
            throw error
        }
        workers = WorkerPool(maxIdle: configuration.maxIdleWorkers, stackBytes: configuration.threadStackBytes)
    }

    /// accept(2) failures other than EINTR/EAGAIN since start (each logged, then backed off).
    public var acceptErrorCount: Int { acceptErrors.load(ordering: .relaxed) }

    /// Reserves `bytes` of the process-wide body budget; false when it would go over.
    func reserveBody(_ bytes: Int) -> Bool {
        guard bytes > 0 else { return true }
        let after = bufferedBodyBytes.add(bytes, ordering: .relaxed).newValue
        if after > configuration.maxBufferedBodyBytes {
            bufferedBodyBytes.subtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    func releaseBody(_ bytes: Int) {
        if bytes > 0 { bufferedBodyBytes.subtract(bytes, ordering: .relaxed) }
    }

    /// Body bytes buffered now (for tests and metrics).
    public var bufferedBodyByteCount: Int { bufferedBodyBytes.load(ordering: .relaxed) }

    public var isStopping: Bool { stopping.load(ordering: .relaxed) }
    /// Open connections, idle ones included.
    public var activeConnections: Int { state.withLock { $0.active } }
    /// Idle keep-alive connections held by the epoll loop (no thread each).
    public var idleConnections: Int { idle.count }
    /// Worker threads waiting for work.
    public var idleWorkerThreads: Int { workers.idleWorkers }
    /// Requests answered with a framing error (400/408/413/431/…) since start.
    public var protocolErrorCount: Int { protocolErrors.load(ordering: .relaxed) }
    /// Connections refused because `maxConnections` were open.
    public var rejectedConnectionCount: Int { rejectedConnections.load(ordering: .relaxed) }

    func noteProtocolError() { protocolErrors.add(1, ordering: .relaxed) }

    /// Requests the idle loop started and the handler answered later, from its own thread
    /// (`LaterRequests`), since start: no worker took part.
    public var laterAnswerCount: Int { laterAnswers.load(ordering: .relaxed) }

    func noteLaterAnswer() { laterAnswers.add(1, ordering: .relaxed) }

    /// Starts the idle loop and the accept thread.
    public func start() throws {
        let loopStarted = spawnThread(name: "http-idle-loop", stackBytes: configuration.threadStackBytes) { [self] in
            // The loop's read buffer for requests it answers itself (one thread: one buffer).
            let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.inlineReadBytes, alignment: 16)
            defer { scratch.deallocate() }
            idle.run(
                onReadable: { [self] fd, peerIsLoopback in
                    switch serveInline(fd, peerIsLoopback: peerIsLoopback, scratch: scratch) {
                    case .done:
                        break
                    case .handOff(let received):
                        serveOnWorker(fd, peerIsLoopback: peerIsLoopback, received: received)
                    }
                },
                onClosed: { [self] in state.withLock { $0.active -= 1 } })
        }
        guard loopStarted else { throw SocketError(operation: "pthread_create", errno: errno) }
        state.withLock { $0.acceptLoopDone = false }
        guard spawnThread(name: "http-accept", stackBytes: configuration.threadStackBytes, { [self] in acceptLoop() }) else {
            state.withLock { $0.acceptLoopDone = true }
            throw SocketError(operation: "pthread_create", errno: errno)
        }
    }

    /// Runs the request loop on the calling worker; then parks the connection in the idle
    /// loop, or closes it.
    func serve(_ fd: Int32, peerIsLoopback: Bool?, firstRequest: Bool, received: [UInt8] = [], parksForLater: Bool = true) {
        var connection = Connection(
            fd: fd, server: self, peerIsLoopback: peerIsLoopback, firstRequest: firstRequest, received: received,
            parksForLater: parksForLater)
        if case .park(let deadline) = connection.run(),
            idle.park(fd, peerIsLoopback: connection.peerIsLoopback, deadline: deadline)
        {
            return
        }
        closeConnection(fd)
    }

    /// `serve` on a worker, for a connection a thread other than a worker holds (the idle
    /// loop, or the one answering a request the loop started); closed if no worker can be had.
    func serveOnWorker(_ fd: Int32, peerIsLoopback: Bool, received: [UInt8] = [], parksForLater: Bool = true) {
        let submitted = workers.submit { [self] in
            serve(fd, peerIsLoopback: peerIsLoopback, firstRequest: false, received: received, parksForLater: parksForLater)
        }
        if !submitted { closeConnection(fd) }
    }

    /// A worker sends an answer (built there: it may block or log) with blocking sends, then
    /// serves the connection on, or closes it.
    func sendOnWorker(_ fd: Int32, peerIsLoopback: Bool, _ answer: @escaping @Sendable () -> (bytes: [UInt8], keepAlive: Bool)) {
        let submitted = workers.submit { [self] in
            let (bytes, keepAlive) = answer()
            guard Sockets.sendAll(fd, bytes), keepAlive else { return closeConnection(fd) }
            serve(fd, peerIsLoopback: peerIsLoopback, firstRequest: false)
        }
        if !submitted { closeConnection(fd) }
    }

    func closeConnection(_ fd: Int32) {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        state.withLock { $0.active -= 1 }
    }

    private func acceptLoop() {
        defer { state.withLock { $0.acceptLoopDone = true } }
        var backoffMs = 0.0
        while true {
            switch Sockets.waitReadable(listenFd, wake: acceptStopFd, deadline: Int64.max) {
            case .woken, .timedOut: return
            case .readable: break
            }
            let fd = acceptFunction(listenFd)
            if fd < 0 {
                let code = errno
                if code == EINTR || code == EAGAIN { continue }
                // Anything else (out of descriptors or memory, a network error on a pending
                // connection, …) must never end the loop: count, report, back off, go on.
                acceptErrors.add(1, ordering: .relaxed)
                acceptErrorHandler?(code)
                backoffMs = min(max(backoffMs * 2, 10), 1000)
                sleepMs(backoffMs)
                continue
            }
            backoffMs = 0
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            Sockets.setTimeout(fd, option: SO_SNDTIMEO, ms: configuration.writeTimeoutMs)

            let admitted = state.withLock { s -> Bool in
                guard s.active < configuration.maxConnections else { return false }
                s.active += 1
                return true
            }
            guard admitted else {
                rejectedConnections.add(1, ordering: .relaxed)
                let busy = HTTPResponse.error(
                    .serviceUnavailable, code: "too_many_connections",
                    message: "The server has too many open connections; retry shortly.", headers: [("Retry-After", "1")])
                _ = Sockets.sendAll(fd, serialize(busy, keepAlive: false, version: .http11, headRequest: false))
                close(fd)
                continue
            }
            let started = workers.submit { [self] in serve(fd, peerIsLoopback: nil, firstRequest: true) }
            if !started {
                close(fd)
                state.withLock { $0.active -= 1 }
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish (their responses say
    /// `Connection: close`), closes idle connections (parked ones at once, by the idle
    /// loop, which then ends), and waits up to `drainTimeoutMs`.
    /// - Returns: true when every connection finished in time.
    ///
    /// While draining the server still accepts: each new connection gets one request
    /// answered with `Connection: close` (so a load balancer asking `/ready` hears 503
    /// rather than a refused connection).
    @discardableResult
    public func shutdown() -> Bool {
        var byte: UInt8 = 1
        if !stopping.exchange(true, ordering: .acquiringAndReleasing) {
            _ = write(wakeWriteFd, &byte, 1)
        }
        let deadline = monotonicMs() + Int64(configuration.drainTimeoutMs)
        var drained = false
        while monotonicMs() < deadline {
            if state.withLock({ $0.active }) == 0 {
                drained = true
                break
            }
            usleep(5_000)
        }
        _ = write(acceptStopWriteFd, &byte, 1)
        while !state.withLock({ $0.acceptLoopDone }) { usleep(1_000) }
        close(listenFd)
        workers.stop()
        return drained
    }

    /// Runs the handler on a parsed request and serializes its response: what a worker and
    /// the idle loop (`InlineRequests`) both send, and whether the connection stays open.
    func answer(_ head: RequestHead, body: [UInt8]) -> (bytes: [UInt8], keepAlive: Bool) {
        let response = handler.handle(head.request(body: body))
        let keepAlive = head.keepAlive && !isStopping
        return (serialize(response, keepAlive: keepAlive, version: head.version, headRequest: head.method == .HEAD), keepAlive)
    }

    /// Status line, headers and body in one buffer, so a response is one send(2).
    func serialize(_ response: HTTPResponse, keepAlive: Bool, version: HTTPVersion, headRequest: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + response.body.count)
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        out.append(contentsOf: String(response.status.code).utf8)
        out.append(0x20)
        out.append(contentsOf: response.status.reason.utf8)
        out.append(contentsOf: "\r\nDate: ".utf8)
        out.append(contentsOf: dates.current())
        for (name, value) in response.headers {
            out.append(contentsOf: "\r\n".utf8)
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: value.utf8)
        }
        // 1xx and 204 carry no Content-Length (RFC 9110 §8.6).
        if response.status.code != 204 {
            out.append(contentsOf: "\r\nContent-Length: ".utf8)
            out.append(contentsOf: String(response.body.count).utf8)
        }
        if !keepAlive {
            out.append(contentsOf: "\r\nConnection: close".utf8)
        } else if version == .http10 {
            out.append(contentsOf: "\r\nConnection: keep-alive".utf8)
        }
        out.append(contentsOf: "\r\n\r\n".utf8)
        if !headRequest && response.status.code != 204 {
            out.append(contentsOf: response.body)
        }
        return out
    }

    deinit {
        for fd in [wakeFd, wakeWriteFd, acceptStopFd, acceptStopWriteFd] { close(fd) }
    }
}
