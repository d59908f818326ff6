import Dispatch
import Foundation
import Primitives
import XCTest
@testable import SessionStore

/// A protector whose sealed values and fingerprints hold no plaintext (hex of the bytes,
/// reversed), under a named key: a value sealed under another key does not open.
struct OpaqueProtector: FieldProtector {
    var keyId = "k1"
    static func hex(_ s: String) -> String { s.utf8.reversed().map { String(format: "%02x", $0) }.joined() }
    func protects(slot name: String) -> Bool { true }
    func fingerprint(_ value: String) -> String { "fp-" + Self.hex(value) }
    func isCurrent(_ sealed: String) -> Bool { sealed.hasPrefix("enc:\(keyId):") }
    func seal(_ value: String, conversationId: String, field: String) throws(FieldProtectionError) -> String {
        "enc:\(keyId):" + Self.hex("\(conversationId)\n\(field)\n\(value)")
    }
    func open(_ stored: String, conversationId: String, field: String) throws(FieldProtectionError) -> String {
        guard stored.hasPrefix("enc:") else { return stored }
        let parts = stored.split(separator: ":", maxSplits: 2)
        guard parts.count == 3, parts[1] == keyId else { throw .keyUnavailable(keyId: String(parts[1])) }
        var bytes: [UInt8] = []
        var i = parts[2].startIndex
        while i < parts[2].endIndex {
            let j = parts[2].index(i, offsetBy: 2)
            guard let b = UInt8(parts[2][i..<j], radix: 16) else { throw .corrupt }
            bytes.append(b)
            i = j
        }
        let plain = String(decoding: bytes.reversed(), as: UTF8.self)
        let prefix = "\(conversationId)\n\(field)\n"
        guard plain.hasPrefix(prefix) else { throw .corrupt }
        return String(plain.dropFirst(prefix.count))
    }
}

/// The `RestoreQueue` contract, run against the SQLite outbox. Other outboxes subclass this
/// and override `makeQueue` and `storedText`, so one suite covers every backend.
class RestoreOutboxTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A queue over this test's storage: every call within one test reaches the same entries
    /// through its own connection (or client), as separate processes would.
    func makeQueue(protector: (any FieldProtector)? = nil) throws -> any RestoreQueue {
        try RestoreOutbox(path: directory.appendingPathComponent("outbox.sqlite").path, protector: protector)
    }

    /// Everything the queue holds at rest, as text (here: the database file and its WAL).
    func storedText() throws -> String {
        let path = directory.appendingPathComponent("outbox.sqlite").path
        return [path, path + "-wal"].compactMap { FileManager.default.contents(atPath: $0) }
            .map { String(decoding: $0, as: UTF8.self) }.joined()
    }

    let now: Int64 = 1_800_000_000_000

    func target(_ conversationId: String = "c1", _ sessionId: String = "wa-1") -> RestoreTarget {
        RestoreTarget(conversationId: conversationId, sessionId: sessionId, userId: "u-\(sessionId)", restoredFrom: "web-chat")
    }

    @discardableResult
    func enqueue(
        _ q: any RestoreQueue, _ t: RestoreTarget, version: Int64 = 2, at: Int64 = 0, ttlMs: Int64 = 3_600_000,
        leaseMs: Int64 = 5_000, owner: String = "a"
    ) throws -> RestoreClaim? {
        try q.enqueue(t, sessionVersion: version, nowMs: now + at, ttlMs: ttlMs, leaseMs: leaseMs, owner: owner)
    }

    func testEnqueue_takesTheLeaseAndIsNotDueWhileItIsHeld() throws {
        let q = try makeQueue()
        let claim = try XCTUnwrap(try enqueue(q, target()))
        XCTAssertEqual(claim.target, target())
        XCTAssertEqual(claim.owner, "a")
        XCTAssertEqual(claim.revision, 1)
        XCTAssertEqual(claim.attempts, 0)
        XCTAssertEqual(claim.sessionVersion, 2)
        XCTAssertEqual(claim.createdAtMs, now)
        XCTAssertEqual(claim.expiresAtMs, now + 3_600_000)
        XCTAssertNil(try q.claimNext(nowMs: now + 4_999, leaseMs: 5_000, owner: "b"), "leased to a")
        let stats = try q.stats(nowMs: now + 1_000)
        XCTAssertEqual(stats.depth, 1)
        XCTAssertEqual(stats.oldestAgeMs, 1_000)
    }

    func testOneEntryPerConversationAndSession() throws {
        let q = try makeQueue()
        try enqueue(q, target("c1", "wa-1"))
        XCTAssertNil(try enqueue(q, target("c1", "wa-1"), version: 3, at: 10, owner: "b"))
        try enqueue(q, target("c1", "wa-2"))
        try enqueue(q, target("c2", "wa-1"))
        XCTAssertEqual(try q.stats(nowMs: now).depth, 3)
    }

    /// The holder of a lease finishes with a claim whose revision is stale: the entry is
    /// released, due at once, and the next claim carries the newest version.
    func testEnqueueWhileLeased_holderKeepsItThenReleasesTheNewerRevision() throws {
        let q = try makeQueue()
        let first = try XCTUnwrap(try enqueue(q, target(), version: 2))
        XCTAssertNil(try enqueue(q, target(), version: 3, at: 100, owner: "b"), "a holds the lease")
        XCTAssertNil(try enqueue(q, target(), version: 1, at: 200, owner: "c"), "an older version never lowers it")
        try q.complete(first, nowMs: now + 300)
        let again = try XCTUnwrap(try q.claimNext(nowMs: now + 300, leaseMs: 5_000, owner: "d"), "released, due at once")
        XCTAssertEqual(again.revision, 3)
        XCTAssertEqual(again.sessionVersion, 3)
        XCTAssertEqual(again.owner, "d")
        XCTAssertEqual(again.target, target())
        try q.complete(again, nowMs: now + 400)
        XCTAssertNil(try q.claimNext(nowMs: now + 100_000, leaseMs: 5_000, owner: "e"))
        XCTAssertEqual(try q.stats(nowMs: now).depth, 0)
    }

    func testRetry_reschedulesAndCountsAttempts() throws {
        let q = try makeQueue()
        let first = try XCTUnwrap(try enqueue(q, target()))
        try q.retry(first, nextAttemptMs: now + 10_000)
        XCTAssertNil(try q.claimNext(nowMs: now + 9_999, leaseMs: 5_000, owner: "b"), "not due yet")
        let second = try XCTUnwrap(try q.claimNext(nowMs: now + 10_000, leaseMs: 5_000, owner: "b"))
        XCTAssertEqual(second.attempts, 1)
        XCTAssertEqual(second.revision, 1)
        try q.retry(second, nextAttemptMs: now + 20_000)
        let third = try XCTUnwrap(try q.claimNext(nowMs: now + 20_000, leaseMs: 5_000, owner: "c"))
        XCTAssertEqual(third.attempts, 2)
    }

    /// A holder whose lease ran out (it hung, or died and came back) can neither delete nor
    /// reschedule the entry under the new holder's lease.
    func testStaleLeaseHolder_cannotClobberTheNewHolder() throws {
        let q = try makeQueue()
        let stale = try XCTUnwrap(try enqueue(q, target(), leaseMs: 1_000))
        let current = try XCTUnwrap(try q.claimNext(nowMs: now + 1_000, leaseMs: 5_000, owner: "b"), "a's lease ran out")
        try q.retry(stale, nextAttemptMs: now + 1_000_000)
        try q.complete(stale, nowMs: now + 1_100)
        XCTAssertNil(try q.claimNext(nowMs: now + 2_000, leaseMs: 5_000, owner: "c"), "still b's")
        XCTAssertEqual(try q.stats(nowMs: now + 2_000).depth, 1)
        try q.complete(current, nowMs: now + 2_100)
        XCTAssertEqual(try q.stats(nowMs: now).depth, 0)
    }

    /// A dead holder loses nothing: the entry is due again when its lease runs out.
    func testDeadHolder_entryDueAgainWhenTheLeaseRunsOut() throws {
        let q = try makeQueue()
        try enqueue(q, target(), leaseMs: 5_000)
        XCTAssertNil(try q.claimNext(nowMs: now + 4_999, leaseMs: 5_000, owner: "b"))
        let claim = try XCTUnwrap(try q.claimNext(nowMs: now + 5_000, leaseMs: 5_000, owner: "b"))
        XCTAssertEqual(claim.target, target())
    }

    /// Expired entries are handed out for the caller to drop, and count as absent.
    func testExpiredEntry_handedOutToBeDroppedAndNotCounted() throws {
        let q = try makeQueue()
        try enqueue(q, target(), ttlMs: 1_000, leaseMs: 500)
        XCTAssertEqual(try q.stats(nowMs: now + 999).depth, 1)
        XCTAssertEqual(try q.stats(nowMs: now + 1_000).depth, 0, "expired counts as absent")
        let claim = try XCTUnwrap(try q.claimNext(nowMs: now + 1_000, leaseMs: 5_000, owner: "b"))
        XCTAssertLessThanOrEqual(claim.expiresAtMs, now + 1_000)
        try q.complete(claim, nowMs: now + 1_000)
        XCTAssertEqual(try q.stats(nowMs: 0).depth, 0)
    }

    /// Re-queued after it expired: a new entry (version, age), its revision still counting.
    func testRequeueAfterExpiry_startsAfresh() throws {
        let q = try makeQueue()
        let old = try XCTUnwrap(try enqueue(q, target(), version: 5, ttlMs: 1_000, leaseMs: 500))
        let fresh = try XCTUnwrap(try enqueue(q, target(), version: 2, at: 2_000, ttlMs: 60_000, owner: "b"))
        XCTAssertEqual(fresh.sessionVersion, 2)
        XCTAssertEqual(fresh.createdAtMs, now + 2_000)
        XCTAssertEqual(fresh.expiresAtMs, now + 62_000)
        XCTAssertEqual(fresh.revision, 2)
        XCTAssertEqual(try q.stats(nowMs: now + 2_000).depth, 1)
        XCTAssertEqual(try q.stats(nowMs: now + 2_000).oldestAgeMs, 0)
        try q.complete(old, nowMs: now + 2_100)
        XCTAssertEqual(try q.stats(nowMs: now + 2_100).depth, 1, "the old claim cannot remove the new entry")
    }

    func testRemoveConversation_erasesEveryQueuedRestoreOfIt() throws {
        let q = try makeQueue()
        try enqueue(q, target("c1", "wa-1"))
        try enqueue(q, target("c1", "vo-1"))
        try enqueue(q, target("c2", "wa-9"))
        XCTAssertEqual(try q.removeConversation("c1"), 2)
        XCTAssertEqual(try q.removeConversation("c1"), 0)
        let left = try XCTUnwrap(try q.claimNext(nowMs: now + 10_000, leaseMs: 5_000, owner: "b"))
        XCTAssertEqual(left.target, target("c2", "wa-9"))
        XCTAssertNil(try q.claimNext(nowMs: now + 10_000, leaseMs: 5_000, owner: "c"))
    }

    /// SPEC "PII encryption at rest": with a protector, no user or session id is stored in
    /// plaintext (not even in the key), and claims hand them back opened.
    func testEncrypted_noPlaintextIdsAtRest_claimsOpenThem() throws {
        let q = try makeQueue(protector: OpaqueProtector())
        let t = RestoreTarget(conversationId: "conv-enc", sessionId: "session-PLAIN-123", userId: "user-PLAIN-456", restoredFrom: "web")
        let claim = try XCTUnwrap(try q.enqueue(t, sessionVersion: 1, nowMs: now, ttlMs: 60_000, leaseMs: 1_000, owner: "a"))
        XCTAssertEqual(claim.target, t)
        XCTAssertEqual(claim.sessionKey, OpaqueProtector().fingerprint(t.sessionId))
        let raw = try storedText()
        XCTAssertTrue(raw.contains("conv-enc"), "the dump shows the entry")
        XCTAssertFalse(raw.contains("session-PLAIN-123"))
        XCTAssertFalse(raw.contains("user-PLAIN-456"))
        try q.retry(claim, nextAttemptMs: now + 1)
        XCTAssertEqual(try q.claimNext(nowMs: now + 1, leaseMs: 1_000, owner: "b")?.target, t)
    }

    /// Ids no configured key opens: nobody can ever send the entry; it is dropped.
    func testUndeliverable_droppedWhenNoKeyOpensIt() throws {
        let old = try makeQueue(protector: OpaqueProtector(keyId: "old"))
        try enqueue(old, target(), leaseMs: 0)
        let q = try makeQueue(protector: OpaqueProtector(keyId: "new"))
        XCTAssertNil(try q.claimNext(nowMs: now + 1, leaseMs: 5_000, owner: "b"))
        XCTAssertEqual(try q.stats(nowMs: 0).depth, 0)
    }

    /// SPEC: exactly one sender per due restore. Several claimers (each its own connection
    /// or client, as replicas are) race for the same due entries: each is leased once.
    func testConcurrentClaimers_eachDueEntryLeasedOnce() throws {
        let entries = 24, claimers = 6
        let setup = try makeQueue()
        for i in 0..<entries { try enqueue(setup, target("c\(i % 5)", "s\(i)"), leaseMs: 0) }
        let queues = try (0..<claimers).map { _ in try makeQueue() }
        let leased = Locked<[String: [String]]>([:])
        let failures = Locked<[String]>([])
        let deadline = Date().addingTimeInterval(60)
        let now = self.now
        DispatchQueue.concurrentPerform(iterations: claimers) { i in
            var empty = 0, n = 0
            // A nil may mean "lost every candidate to others": stop after three in a row.
            while empty < 3, Date() < deadline {
                n += 1
                do {
                    if let claim = try queues[i].claimNext(nowMs: now + 1, leaseMs: 600_000, owner: "o\(i)-\(n)") {
                        leased.withLock { $0["\(claim.target.conversationId)/\(claim.target.sessionId)", default: []].append(claim.owner) }
                        empty = 0
                    } else {
                        empty += 1
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                    empty += 1
                }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [])
        let result = leased.withLock { $0 }
        XCTAssertEqual(result.count, entries, "every due entry leased")
        XCTAssertEqual(result.filter { $0.value.count > 1 }, [:], "no entry leased twice")
    }
}
