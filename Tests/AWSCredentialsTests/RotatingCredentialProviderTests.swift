import Foundation
import Primitives
import XCTest
@testable import AWSCredentials

final class RotatingCredentialProviderTests: XCTestCase {
    private let clock = ManualClock()

    private func issuing(lifetime: Double, delayMs: UInt32 = 0) -> ScriptedProvider {
        let read = clock.read
        return ScriptedProvider { n in
            if delayMs > 0 { usleep(delayMs * 1000) }
            return AWSCredentials(accessKeyId: "K\(n)", secretAccessKey: "s\(n)", sessionToken: "t\(n)", expiration: read() + lifetime)
        }
    }

    func testCachedUntilTheMargin_thenRefreshedBeforeExpiry() throws {
        let base = issuing(lifetime: 3600)
        let rotating = RotatingCredentialProvider(base, clock: clock.read)
        XCTAssertEqual(try rotating.credentials().accessKeyId, "K1")
        clock.advance(3600 - 301)
        XCTAssertEqual(try rotating.credentials().accessKeyId, "K1")
        XCTAssertEqual(base.calls.withLock { $0 }, 1)
        clock.advance(2)  // inside the 5-minute margin, not yet expired
        XCTAssertEqual(try rotating.credentials().accessKeyId, "K2")
        XCTAssertEqual(base.calls.withLock { $0 }, 2)
        XCTAssertEqual(rotating.refreshes, 2)
    }

    func testEightConcurrentCallers_withNothingCached_shareOneRefresh() throws {
        let base = issuing(lifetime: 3600, delayMs: 200)
        let rotating = RotatingCredentialProvider(base, clock: clock.read)
        let results = Locked<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            let id = (try? rotating.credentials().accessKeyId) ?? "error"
            results.withLock { $0.append(id) }
        }
        XCTAssertEqual(results.withLock { $0 }, Array(repeating: "K1", count: 8))
        XCTAssertEqual(base.calls.withLock { $0 }, 1)
    }

    func testEightConcurrentCallers_inTheMargin_oneRefreshesOthersServedTheValidOnes() throws {
        let results = Locked<[String]>([])
        let read = clock.read
        // The refresh does not finish until the seven others have been answered: they must
        // not wait for it (they hold still-valid credentials). If they did, it times out.
        let base = ScriptedProvider { n in
            if n > 1 {
                let until = Date().addingTimeInterval(5)
                while results.withLock({ $0.count }) < 7, Date() < until { usleep(1000) }
            }
            return AWSCredentials(accessKeyId: "K\(n)", secretAccessKey: "s", expiration: read() + 3600)
        }
        let rotating = RotatingCredentialProvider(base, clock: clock.read)
        XCTAssertEqual(try rotating.credentials().accessKeyId, "K1")
        clock.advance(3600 - 100)  // in the margin; still valid for 100 s
        let done = DispatchGroup()
        let started = Date()
        for _ in 0..<8 {
            done.enter()
            Thread.detachNewThread {
                let id = (try? rotating.credentials().accessKeyId) ?? "error"
                results.withLock { $0.append(id) }
                done.leave()
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        let ids = results.withLock { $0 }
        XCTAssertEqual(base.calls.withLock { $0 }, 2, "one refresh for all eight")
        XCTAssertEqual(ids.filter { $0 == "K2" }.count, 1, "the refreshing caller gets the new ones: \(ids)")
        XCTAssertEqual(ids.filter { $0 == "K1" }.count, 7, "the others are not held up: \(ids)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 4, "nobody waited for the refresh")
        XCTAssertEqual(try rotating.credentials().accessKeyId, "K2")
    }

    func testRefreshFails_stillValidOnesServed_expiredOnesNever() throws {
        let failing = Locked(false)
        let read = clock.read
        let base = ScriptedProvider { n throws(AWSCredentialError) in
            if failing.withLock({ $0 }) { throw .transport("down") }
            return AWSCredentials(accessKeyId: "K\(n)", secretAccessKey: "s", expiration: read() + 900)
        }
        let rotating = RotatingCredentialProvider(base, clock: clock.read)
        XCTAssertEqual(try rotating.credentials().accessKeyId, "K1")
        failing.withLock { $0 = true }
        clock.advance(900 - 200)  // in the margin: refresh fails, the cached ones are still good
        XCTAssertEqual(try rotating.credentials().accessKeyId, "K1")
        XCTAssertEqual(rotating.failures, 1)
        XCTAssertEqual(rotating.lastError, .transport("down"))
        clock.advance(195)  // 5 s left: under the minimum validity, so not handed out
        XCTAssertThrowsError(try rotating.credentials()) { XCTAssertEqual($0 as? AWSCredentialError, .transport("down")) }
        clock.advance(10)  // expired
        XCTAssertThrowsError(try rotating.credentials())
        // The source recovers: so does the provider, by itself.
        failing.withLock { $0 = false }
        clock.advance(2)
        let fresh = try rotating.credentials()
        XCTAssertTrue(fresh.isValid(at: clock.read()))
        XCTAssertNil(rotating.lastError)
    }

    func testNeverReturnsExpired_acrossAManyStepWalk() throws {
        // Property: whatever the clock and the source do, what is returned is valid now.
        let read = clock.read
        let base = ScriptedProvider { n throws(AWSCredentialError) in
            if n % 3 == 0 { throw .transport("flaky") }
            // Some sources hand out short-lived or even already-expired credentials.
            let lifetime: Double = [3600, 60, 5, -10, 900][n % 5]
            return AWSCredentials(accessKeyId: "K\(n)", secretAccessKey: "s", expiration: read() + lifetime)
        }
        let rotating = RotatingCredentialProvider(base, clock: clock.read)
        var served = 0
        for step in 0..<2000 {
            clock.advance(Double(step % 7) * 13)
            if let c = try? rotating.credentials() {
                served += 1
                XCTAssertTrue(c.isValid(at: clock.read(), for: rotating.configuration.minimumValiditySeconds), "step \(step): \(c)")
            }
        }
        XCTAssertGreaterThan(served, 100)
    }

    func testFailureBackoff_doesNotHammerTheSource() throws {
        let base = ScriptedProvider { _ throws(AWSCredentialError) in throw .transport("down") }
        let rotating = RotatingCredentialProvider(base, clock: clock.read)
        for _ in 0..<20 { XCTAssertThrowsError(try rotating.credentials()) }
        XCTAssertEqual(base.calls.withLock { $0 }, 1)
        clock.advance(1.5)
        XCTAssertThrowsError(try rotating.credentials())
        XCTAssertEqual(base.calls.withLock { $0 }, 2)
    }

    func testInvalidate_dropsOnlyTheRejectedOnes() throws {
        let base = issuing(lifetime: 3600)
        let rotating = RotatingCredentialProvider(base, clock: clock.read)
        let first = try rotating.credentials()
        rotating.invalidate(AWSCredentials(accessKeyId: "other", secretAccessKey: "x"))
        XCTAssertEqual(try rotating.credentials(), first)
        rotating.invalidate(first)
        XCTAssertEqual(try rotating.credentials().accessKeyId, "K2")
        XCTAssertEqual(base.invalidated.withLock { $0 }.count, 2, "passed on to the source")
    }

    func testNonExpiringCredentials_fetchedOnce() throws {
        let base = ScriptedProvider(AWSCredentials(accessKeyId: "AKIA", secretAccessKey: "s"))
        let rotating = RotatingCredentialProvider(base, clock: clock.read)
        for _ in 0..<5 {
            clock.advance(1e6)
            XCTAssertEqual(try rotating.credentials().accessKeyId, "AKIA")
        }
        XCTAssertEqual(base.calls.withLock { $0 }, 1)
    }
}
