#if canImport(Glibc)
import Glibc
#endif

/// Requests the idle loop starts and another thread answers (`HTTPHandler.handleLater`).
///
/// The webhook's work ends in a commit that takes the disk's sync time, shared by every
/// write of a batch. A worker that waits for it costs two thread switches a request (the
/// wait for the request, the wait for the commit). Instead, for a route that can, the loop
/// reads the request whole, the handler does everything up to the write without blocking,
/// and the thread that commits the batch answers each request of it: non-blocking send,
/// then the connection is parked again. No thread sleeps on any one request.
///
/// The loop takes only a request it holds entirely, in one read: head and body, and
/// nothing after it (no pipelining), without `Expect: 100-continue`, within the body
/// budget. Anything else, and anything the handler declines (`handleLater` false) or hands
/// back (`.handBack`: nothing was done), is served by a worker from the bytes read, exactly
/// as if it had come straight to one. An answer that may block or log to be built (an
/// error's) is built and sent by a worker too (`.fromWorker`), which then serves on.
extension HTTPServer {
    /// Whether the loop may start requests like this one: a POST (the only method it reads
    /// a body for) to a route whose handler answers later. (Whether it can take this one
    /// whole is `startLater`'s to see.)
    func servesLater(_ head: RequestHead) -> Bool {
        answersLater && head.method == .POST && handler.servesLater(head)
    }

    func startLater(_ fd: Int32, peerIsLoopback: Bool, received: [UInt8]) -> InlineOutcome {
        var scanner = HeadScanner()
        guard case .complete(let headEnd, let bodyStart)? = try? scanner.scan(received, limits: configuration),
            var head = try? HTTPHeadParser.parse(received[scanner.headStart..<headEnd], limits: configuration),
            case .contentLength(let length) = head.framing, bodyStart + length == received.count, !head.expectsContinue
        else { return .handOff(received) }
        head.peerIsLoopback = peerIsLoopback
        // Refusals decided by the head (credentials, unknown route) are the worker's, which
        // answers them and closes without reading the body.
        guard servesLater(head), reserveBody(length) else { return .handOff(received) }
        let keepAlive = head.keepAlive
        let version = head.version
        let started = handler.handleLater(head.request(body: Array(received[bodyStart...]))) { [self] answer in
            releaseBody(length)
            switch answer {
            case .response(let response):
                noteLaterAnswer()
                let stayOpen = keepAlive && !isStopping
                deliver(
                    fd, peerIsLoopback: peerIsLoopback,
                    serialize(response, keepAlive: stayOpen, version: version, headRequest: false), keepAlive: stayOpen)
            case .fromWorker(let build):
                sendOnWorker(fd, peerIsLoopback: peerIsLoopback) { [self] in
                    let stayOpen = keepAlive && !isStopping
                    return (serialize(build(), keepAlive: stayOpen, version: version, headRequest: false), stayOpen)
                }
            case .handBack:
                // Nothing was done: a worker serves the request from its bytes, and keeps the
                // connection a while (its next request would likely be handed back too).
                serveOnWorker(fd, peerIsLoopback: peerIsLoopback, received: received, parksForLater: false)
            }
        }
        guard started else {
            releaseBody(length)
            return .handOff(received)
        }
        return .done
    }
}
