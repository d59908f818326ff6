#if canImport(Glibc)
import Glibc
#endif
import Primitives
import XCTest
@testable import HTTPServer

/// The epoll loop alone, on socket pairs: readable hand-off, expiry, shutdown, and the
/// bound on its deadline queue.
final class IdleConnectionsTests: XCTestCase {
    private func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        return (fds[0], fds[1])
    }

    /// Starts the loop on a thread; readable fds go to `readable`, closes are counted.
    private final class Harness: @unchecked Sendable {
        let wake: (read: Int32, write: Int32)
        let loop: IdleConnections
        let readable = Locked<[Int32]>([])
        let closed = Locked(0)
        let done = Locked(false)

        init() throws {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { throw SocketError(operation: "pipe", errno: errno) }
            wake = (fds[0], fds[1])
            loop = try IdleConnections(shutdownFd: fds[0])
            spawnThread(name: "test") { [self] in
                loop.run(
                    onReadable: { fd, _ in self.readable.withLock { $0.append(fd) } },
                    onClosed: { self.closed.withLock { $0 += 1 } })
                done.withLock { $0 = true }
            }
        }

        func shutdown() {
            var byte: UInt8 = 1
            _ = write(wake.write, &byte, 1)
            let deadline = monotonicMs() + 3000
            while !done.withLock({ $0 }) && monotonicMs() < deadline { usleep(1000) }
        }

        func waitUntil(_ condition: () -> Bool) -> Bool {
            let deadline = monotonicMs() + 3000
            while monotonicMs() < deadline {
                if condition() { return true }
                usleep(1000)
            }
            return false
        }

        deinit {
            close(wake.read)
            close(wake.write)
        }
    }

    func testReadable_handedBack_thenExpired_thenShutdownClosesTheRest() throws {
        let h = try Harness()
        let (a, peerA) = socketPair()
        let (b, peerB) = socketPair()
        let (c, peerC) = socketPair()
        defer { for fd in [peerA, peerB, peerC] { close(fd) } }
        // Deadlines in parking order, as the server's (one idle timeout after each response).
        XCTAssertTrue(h.loop.park(b, peerIsLoopback: true, deadline: monotonicMs() + 100))
        XCTAssertTrue(h.loop.park(a, peerIsLoopback: true, deadline: monotonicMs() + 60_000))
        XCTAssertTrue(h.loop.park(c, peerIsLoopback: true, deadline: monotonicMs() + 60_000))
        XCTAssertEqual(h.loop.count, 3)
        _ = send(peerA, "x", 1, 0)
        XCTAssertTrue(h.waitUntil { h.readable.withLock { $0 } == [a] }, "readable: handed back")
        XCTAssertTrue(h.waitUntil { h.closed.withLock { $0 } == 1 }, "b expired")
        var byte: UInt8 = 0
        XCTAssertEqual(recv(peerB, &byte, 1, 0), 0, "b's peer sees the close")
        XCTAssertEqual(h.loop.count, 1)
        h.shutdown()
        XCTAssertEqual(h.closed.withLock { $0 }, 2, "c closed at shutdown")
        XCTAssertEqual(recv(peerC, &byte, 1, 0), 0)
        XCTAssertFalse(h.loop.park(a, peerIsLoopback: true, deadline: monotonicMs() + 1000), "no parking after shutdown")
        close(a)
    }

    func testPeerGone_closedByTheLoopWithoutAWorker() throws {
        let h = try Harness()
        let (a, peer) = socketPair()
        XCTAssertTrue(h.loop.park(a, peerIsLoopback: false, deadline: monotonicMs() + 60_000))
        close(peer)
        XCTAssertTrue(h.waitUntil { h.closed.withLock { $0 } == 1 })
        XCTAssertEqual(h.readable.withLock { $0 }, [])
        h.shutdown()
    }

    /// A connection that parks and wakes thousands of times leaves the deadline queue
    /// bounded (stale entries are compacted away), not growing until their deadlines.
    func testDeadlineQueue_staysBoundedUnderChurn() throws {
        let h = try Harness()
        let (a, peer) = socketPair()
        defer { close(peer) }
        var byte: UInt8 = 0
        for i in 0..<6000 {
            XCTAssertTrue(h.loop.park(a, peerIsLoopback: true, deadline: monotonicMs() + 60_000))
            _ = send(peer, "x", 1, 0)
            XCTAssertTrue(h.waitUntil { h.readable.withLock { $0.count } == i + 1 })
            _ = recv(a, &byte, 1, 0)
        }
        XCTAssertLessThanOrEqual(h.loop.queuedDeadlines, 4 * 1 + 4096 + 1)
        h.shutdown()
        close(a)
    }
}
