#if canImport(Glibc)
import Glibc
#endif
import Primitives

/// One client connection, served on a worker thread: read a head, read the body, call the
/// handler, write the response, repeat while keep-alive holds. Every wait has a deadline,
/// and idle waits also watch the server's wake pipe so shutdown closes idle connections.
/// A keep-alive connection with no next request within `idleHandoffDelayMs` ends the loop
/// with `.park`: the worker hands it to the idle loop (`IdleConnections`) and is free.
struct Connection {
    private let fd: Int32
    private let server: HTTPServer
    private let config: HTTPServerConfiguration
    private var buffer: [UInt8] = []
    private var readChunk: [UInt8]
    let peerIsLoopback: Bool
    private var firstRequest: Bool
    /// Whether answering a request the loop could start (`LaterRequests`) parks the
    /// connection at once; false when the handler just handed one of this connection's
    /// requests back (`LaterAnswer.handBack`: a lost write, a conversation too large for
    /// the fast path), so the worker keeps the connection for the hand-off delay like any
    /// other rather than the loop handing each next request back as well.
    private let parksForLater: Bool

    /// What the caller does with the socket once `run` returns.
    enum Outcome: Equatable {
        /// Shut down and close it.
        case close
        /// Idle between requests, nothing buffered: park it until readable or `deadline`
        /// (monotonic ms, the end of its idle timeout).
        case park(deadline: Int64)
    }

    /// - Parameters:
    ///   - peerIsLoopback: known when a parked connection comes back; looked up otherwise.
    ///   - firstRequest: false when a parked keep-alive connection comes back.
    ///   - received: bytes the idle loop already read from it (the start of a request).
    ///   - parksForLater: see the property.
    init(
        fd: Int32, server: HTTPServer, peerIsLoopback: Bool? = nil, firstRequest: Bool = true, received: [UInt8] = [],
        parksForLater: Bool = true
    ) {
        self.fd = fd
        self.server = server
        self.config = server.configuration
        self.readChunk = [UInt8](repeating: 0, count: 16 * 1024)
        self.peerIsLoopback = peerIsLoopback ?? Sockets.peerIsLoopback(fd)
        self.firstRequest = firstRequest
        self.parksForLater = parksForLater
        buffer.reserveCapacity(16 * 1024)
        buffer.append(contentsOf: received)
    }

    private enum ReadOutcome { case data, closed, timedOut, woken }

    /// Reads more bytes into `buffer`, waiting until `deadline`.
    private mutating func fill(deadline: Int64, watchShutdown: Bool) -> ReadOutcome {
        switch Sockets.waitReadable(fd, wake: watchShutdown ? server.wakeFd : nil, deadline: deadline) {
        case .timedOut: return .timedOut
        case .woken: return .woken
        case .readable: break
        }
        while true {
            let n = readChunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer.append(contentsOf: readChunk[0..<n])
                return .data
            }
            if n < 0, errno == EINTR { continue }
            return .closed
        }
    }

    mutating func run() -> Outcome {
        while true {
            // 1. The head. An empty buffer means the connection is idle between requests.
            var scanner = HeadScanner()
            var headDeadline: Int64 =
                monotonicMs() + Int64(firstRequest ? config.headerTimeoutMs : config.idleTimeoutMs)
            var started = !buffer.isEmpty
            if started { headDeadline = monotonicMs() + Int64(config.headerTimeoutMs) }
            var headEnd = 0, bodyStart = 0
            scan: while true {
                do {
                    if case .complete(let end, let start) = try scanner.scan(buffer, limits: config) {
                        headEnd = end
                        bodyStart = start
                        break scan
                    }
                } catch {
                    fail(error); return .close
                }
                // Draining: idle keep-alive connections close, but a new connection's first
                // request is still read and answered (with Connection: close).
                let idle = !started && !firstRequest
                if server.isStopping && idle { return .close }
                // Idle between requests: wait briefly on this thread (a busy client's next
                // request usually comes within it, and then costs no hand-off), then park.
                let handoff = monotonicMs() + Int64(config.idleHandoffDelayMs)
                let waitUntil = idle ? min(headDeadline, handoff) : headDeadline
                switch fill(deadline: waitUntil, watchShutdown: idle) {
                case .data:
                    if !started {
                        started = true
                        headDeadline = monotonicMs() + Int64(config.headerTimeoutMs)
                    }
                case .closed, .woken: return .close
                case .timedOut:
                    if started { failTimeout(); return .close }
                    if idle, waitUntil < headDeadline { return .park(deadline: headDeadline) }
                    return .close
                }
            }
            firstRequest = false

            // 2. Parse it.
            var head: RequestHead
            do {
                head = try HTTPHeadParser.parse(buffer[scanner.headStart..<headEnd], limits: config)
            } catch {
                fail(error); return .close
            }
            head.peerIsLoopback = peerIsLoopback

            // 3. What the head alone decides (route, method, credentials) is answered before
            //    any body is read; then the connection closes, its body unread.
            if head.framing != .none, let early = server.handler.preflight(head) {
                _ = Sockets.sendAll(fd, server.serialize(early, keepAlive: false, version: head.version, headRequest: false))
                lingerClose(); return .close
            }

            // 4. The body, within the process-wide budget of buffered body bytes.
            let bodyDeadline = monotonicMs() + Int64(config.bodyTimeoutMs)
            var body: [UInt8] = []
            var consumed = bodyStart
            var reserved = 0
            defer { server.releaseBody(reserved) }
            switch head.framing {
            case .none:
                break
            case .contentLength(let length):
                guard server.reserveBody(length) else { failBusy(); return .close }
                reserved = length
                if head.expectsContinue, buffer.count - bodyStart < length, !sendContinue() { return .close }
                while buffer.count - bodyStart < length {
                    switch fill(deadline: bodyDeadline, watchShutdown: false) {
                    case .data: continue
                    case .timedOut: failTimeout(); return .close
                    case .closed, .woken: return .close
                    }
                }
                body = Array(buffer[bodyStart..<(bodyStart + length)])
                consumed = bodyStart + length
            case .chunked:
                if head.expectsContinue, !sendContinue() { return .close }
                var decoder = ChunkedDecoder(limits: config)
                var position = bodyStart
                while true {
                    do {
                        position += try decoder.feed(buffer, from: position)
                    } catch {
                        fail(error); return .close
                    }
                    let grown = decoder.body.count - reserved
                    if grown > 0 {
                        guard server.reserveBody(grown) else { failBusy(); return .close }
                        reserved += grown
                    }
                    if decoder.isDone { break }
                    switch fill(deadline: bodyDeadline, watchShutdown: false) {
                    case .data: continue
                    case .timedOut: failTimeout(); return .close
                    case .closed, .woken: return .close
                    }
                }
                body = decoder.body
                consumed = position
            }
            buffer.removeSubrange(0..<consumed)
            // A large request grew the buffer: give the memory back rather than keep it for
            // the life of the connection.
            if buffer.capacity > Self.retainedBufferBytes { buffer = Self.compacted(buffer) }

            // 5. Handle and answer.
            let (bytes, keepAlive) = server.answer(head, body: body)
            // The handler is done with the body: give its budget back before answering, so a
            // client that reads the answer can count on the budget being free again.
            server.releaseBody(reserved)
            reserved = 0
            guard Sockets.sendAll(fd, bytes), keepAlive else { return .close }
            // A client of routes the idle loop answers itself (`/health`) or starts (the
            // webhook, `LaterRequests`) is served there from its next request on: park now
            // rather than hold this thread for it (unless the idle loop is configured away).
            if buffer.isEmpty, config.idleHandoffDelayMs < config.idleTimeoutMs,
                server.servesInline(head) || (parksForLater && server.servesLater(head))
            {
                return .park(deadline: monotonicMs() + Int64(config.idleTimeoutMs))
            }
        }
    }

    /// Largest read buffer a connection keeps between requests.
    static let retainedBufferBytes = 64 * 1024

    /// The same bytes in a buffer of ordinary size.
    static func compacted(_ buffer: [UInt8]) -> [UInt8] {
        var fresh: [UInt8] = []
        fresh.reserveCapacity(max(16 * 1024, buffer.count))
        fresh.append(contentsOf: buffer)
        return fresh
    }

    /// The process-wide body budget is used up: 503 + Retry-After, then close.
    private func failBusy() {
        let response = HTTPResponse.error(
            .serviceUnavailable, code: "server_busy", message: "The server is buffering too many request bodies; retry shortly.",
            headers: [("Retry-After", "1")])
        _ = Sockets.sendAll(fd, server.serialize(response, keepAlive: false, version: .http11, headRequest: false))
        lingerClose()
    }

    private func sendContinue() -> Bool {
        Sockets.sendAll(fd, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
    }

    /// Answer, then close (the caller returns and the thread closes the socket).
    private func fail(_ error: HTTPParseError) {
        let response = HTTPResponse.error(error.status, code: error.code, message: error.message)
        _ = Sockets.sendAll(fd, server.serialize(response, keepAlive: false, version: .http11, headRequest: false))
        server.noteProtocolError()
        lingerClose()
    }

    /// After an error answer the client may still be sending (a body we refused). Closing
    /// with unread input makes the kernel send RST, which can destroy our answer before the
    /// client reads it; so half-close and discard input briefly (bounded) first.
    private func lingerClose() {
        Glibc.shutdown(fd, Int32(SHUT_WR))
        let deadline = monotonicMs() + 500
        var discarded = 0
        var scratch = [UInt8](repeating: 0, count: 4096)
        while discarded < 256 * 1024 {
            guard case .readable = Sockets.waitReadable(fd, wake: nil, deadline: deadline) else { return }
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            discarded += n
        }
    }

    private func failTimeout() {
        let response = HTTPResponse.error(
            .requestTimeout, code: "request_timeout", message: "The request was not received in time.")
        _ = Sockets.sendAll(fd, server.serialize(response, keepAlive: false, version: .http11, headRequest: false))
        server.noteProtocolError()
    }
}
