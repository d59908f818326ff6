#if canImport(Glibc)
import Glibc
#endif
import Primitives

/// Requests the idle loop answers on its own thread.
///
/// A parked keep-alive connection that becomes readable normally wakes a worker, which
/// reads, handles and answers, then waits on the socket for the next request: two thread
/// switches a request at least. For a route whose handler never blocks and needs no body
/// (`/health`, which load balancers and orchestrators poll on many connections), the loop
/// does it all itself: one non-blocking read, the same head scanner and parser as a
/// worker, the handler, one non-blocking send, and the connection is parked again. Anything
/// else the loop cannot finish at once (another route, a body, a head split across reads,
/// a malformed head, more bytes than one request, shutdown, a send that would block) goes
/// to a worker with the bytes already read, and is served exactly as before. A `POST` may
/// be one the loop starts and another thread answers (`LaterRequests`); any other request
/// that does not start with `GET ` or `HEAD ` is handed on unscanned. A client that mixes routes
/// on one connection (a proxy's pool) pays one hand-off after each inline answer, as it
/// would after any idle moment.
extension HTTPServer {
    enum InlineOutcome {
        /// Answered (and parked again, closed, or given to a worker to send the rest of the
        /// answer), or started by a handler that answers later (`LaterRequests`).
        case done
        /// A worker takes over with these bytes, the start of the next request.
        case handOff([UInt8])
    }

    /// Whether the loop may answer this request: the handler is asked about bodiless GET and
    /// HEAD requests only (so a worker's POST costs no route lookup).
    func servesInline(_ head: RequestHead) -> Bool {
        head.framing == .none && (head.method == .GET || head.method == .HEAD) && handler.servesInline(head)
    }

    /// Largest read the loop makes: a request head bigger than this goes to a worker.
    static let inlineReadBytes = 4096

    /// - Parameter scratch: the loop's read buffer, `inlineReadBytes` long.
    func serveInline(_ fd: Int32, peerIsLoopback: Bool, scratch: UnsafeMutableRawBufferPointer) -> InlineOutcome {
        var n: Int
        repeat {
            n = recv(fd, scratch.baseAddress, scratch.count, Int32(MSG_DONTWAIT))
        } while n < 0 && errno == EINTR
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
            // Readable a moment ago, nothing now: wait again.
            return parkAgain(fd, peerIsLoopback: peerIsLoopback)
        }
        guard n > 0 else {
            closeConnection(fd)
            return .done
        }
        let received = Array(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
        guard n < scratch.count, !isStopping else { return .handOff(received) }
        // A POST may be one a handler answers later (the webhook's fast path).
        if answersLater, received.starts(with: "POST ".utf8) {
            return startLater(fd, peerIsLoopback: peerIsLoopback, received: received)
        }
        // Otherwise only bodiless GET and HEAD can be answered here: anything else goes on
        // at once, without being scanned twice.
        guard Self.startsAsGetOrHead(received) else { return .handOff(received) }
        var scanner = HeadScanner()
        guard case .complete(let headEnd, let bodyStart)? = try? scanner.scan(received, limits: configuration),
            bodyStart == received.count,
            var head = try? HTTPHeadParser.parse(received[scanner.headStart..<headEnd], limits: configuration)
        else { return .handOff(received) }
        head.peerIsLoopback = peerIsLoopback
        guard servesInline(head) else { return .handOff(received) }

        let (bytes, keepAlive) = answer(head, body: [])
        deliver(fd, peerIsLoopback: peerIsLoopback, bytes, keepAlive: keepAlive)
        return .done
    }

    /// Sends an answer without blocking, then parks the connection again (or closes it). What
    /// the socket does not take at once, a worker sends before it serves on. Safe on any
    /// thread: the loop's, or the one that finishes a request answered later.
    func deliver(_ fd: Int32, peerIsLoopback: Bool, _ bytes: [UInt8], keepAlive: Bool) {
        var sent: Int
        repeat {
            sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        } while sent < 0 && errno == EINTR
        if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK { return closeConnection(fd) }
        let done = max(0, sent)
        if done < bytes.count {
            let rest = Array(bytes[done...])
            return sendOnWorker(fd, peerIsLoopback: peerIsLoopback) { (rest, keepAlive) }
        }
        guard keepAlive else { return closeConnection(fd) }
        _ = parkAgain(fd, peerIsLoopback: peerIsLoopback)
    }

    static func startsAsGetOrHead(_ bytes: [UInt8]) -> Bool {
        bytes.starts(with: "GET ".utf8) || bytes.starts(with: "HEAD ".utf8)
    }

    /// A connection that was readable yet had nothing to read (not seen with TCP: a peer
    /// that half-closes is closed by the loop before this) waits one idle timeout more.
    private func parkAgain(_ fd: Int32, peerIsLoopback: Bool) -> InlineOutcome {
        if !idle.park(fd, peerIsLoopback: peerIsLoopback, deadline: monotonicMs() + Int64(configuration.idleTimeoutMs)) {
            closeConnection(fd)
        }
        return .done
    }
}
