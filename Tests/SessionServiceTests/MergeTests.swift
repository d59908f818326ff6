import Backoff
import DialogWire
import XCTest
@testable import SessionService

final class MergeTests: XCTestCase {
    private let web = DialogEvent(
        conversationId: "c", channel: "web-chat", intent: "book_flight", slots: ["origin": "JFK", "destination": "LHR"],
        timestamp: 100, userId: "u", sessionId: "s1", eventId: "e1")

    func testApply_firstVersionFromEmpty() {
        let s = SessionMerge.apply(web, to: nil, version: 1, eventDigest: SessionMerge.eventDigest("e1"), nowMs: 5_000, ttlSeconds: 60)
        XCTAssertEqual(s.sessionVersion, 1)
        XCTAssertEqual(s.channel, "web-chat")
        XCTAssertEqual(s.previousChannel, "")
        XCTAssertEqual(s.slots, ["origin": "JFK", "destination": "LHR"])
        XCTAssertEqual(s.channels["web-chat"], ChannelState(userId: "u", sessionId: "s1", lastSeen: 100))
        XCTAssertEqual(s.updatedAt, 5_000)
        XCTAssertEqual(s.expiresAt, 65)
        XCTAssertEqual(s.recentEventDigests, [0x8b5c_c4df_7eec_7d32], "SHA-256(\"e1\")'s first 8 bytes")
        XCTAssertEqual(s.recentEventIds, [])
    }

    /// Fixtures from Python's hashlib: int.from_bytes(sha256(id).digest()[:8], "big").
    func testEventDigest_firstEightBytesOfSHA256BigEndian() {
        XCTAssertEqual(SessionMerge.eventDigest("e1"), 0x8b5c_c4df_7eec_7d32)
        XCTAssertEqual(SessionMerge.eventDigest("e70"), 0xfc7b_052c_508d_c1f8)
        XCTAssertEqual(SessionMerge.eventDigest(""), 0xe3b0_c442_98fc_1c14)
    }

    /// A snapshot written before digests holds plain ids: they are still recognised, and the
    /// next version carries them over as digests (oldest first), never as text again.
    func testApply_plainIdsOfAnOlderSnapshotBecomeDigests() {
        var old = SessionMerge.apply(web, to: nil, version: 1, eventDigest: SessionMerge.eventDigest("x"), nowMs: 0, ttlSeconds: 60)
        old.recentEventDigests = []
        old.recentEventIds = ["e1", "e7"]
        XCTAssertTrue(SessionMerge.remembers(old, eventId: "e7", digest: SessionMerge.eventDigest("e7")))
        XCTAssertTrue(SessionMerge.isLastEvent(of: old, eventId: "e7", digest: SessionMerge.eventDigest("e7")))
        XCTAssertFalse(SessionMerge.remembers(old, eventId: "e70", digest: SessionMerge.eventDigest("e70")))
        let next = SessionMerge.apply(web, to: old, version: 2, eventDigest: SessionMerge.eventDigest("e70"), nowMs: 0, ttlSeconds: 60)
        XCTAssertEqual(next.recentEventIds, [])
        XCTAssertEqual(next.recentEventDigests, [0x8b5c_c4df_7eec_7d32, 0xf3e2_e400_523c_5068, 0xfc7b_052c_508d_c1f8])
        XCTAssertTrue(SessionMerge.remembers(next, eventId: "e1", digest: SessionMerge.eventDigest("e1")))
        XCTAssertTrue(SessionMerge.isLastEvent(of: next, eventId: "e70", digest: SessionMerge.eventDigest("e70")))
        XCTAssertFalse(SessionMerge.isLastEvent(of: next, eventId: "e7", digest: SessionMerge.eventDigest("e7")))
    }

    func testApply_eventWinsPerKey_intentKeptWhenAbsent_previousChannelSticks() {
        let v1 = SessionMerge.apply(web, to: nil, version: 1, eventDigest: SessionMerge.eventDigest("e1"), nowMs: 0, ttlSeconds: 60)
        let wa = DialogEvent(conversationId: "c", channel: "whatsapp", slots: ["destination": "CDG", "seat": "1A"], timestamp: 200)
        let v2 = SessionMerge.apply(wa, to: v1, version: 2, eventDigest: SessionMerge.eventDigest("e2"), nowMs: 0, ttlSeconds: 60)
        XCTAssertEqual(v2.slots, ["origin": "JFK", "destination": "CDG", "seat": "1A"])
        XCTAssertEqual(v2.intent, "book_flight")
        XCTAssertEqual(v2.previousChannel, "web-chat")
        XCTAssertEqual(v2.channels.keys.sorted(), ["web-chat", "whatsapp"])
        XCTAssertTrue(SessionMerge.isChannelSwitch(previous: v1, event: wa))
        let again = DialogEvent(conversationId: "c", channel: "whatsapp", intent: "change_seat", timestamp: 300)
        let v3 = SessionMerge.apply(again, to: v2, version: 3, eventDigest: SessionMerge.eventDigest("e3"), nowMs: 0, ttlSeconds: 60)
        XCTAssertEqual(v3.previousChannel, "web-chat", "staying on whatsapp keeps where the user came from")
        XCTAssertEqual(v3.intent, "change_seat")
        XCTAssertFalse(SessionMerge.isChannelSwitch(previous: v2, event: again))
        XCTAssertFalse(SessionMerge.isChannelSwitch(previous: nil, event: again))
    }

    func testApply_remembersAtMost64EventIds() {
        var s: SessionSnapshot?
        for i in 1...70 {
            s = SessionMerge.apply(web, to: s, version: Int64(i), eventDigest: SessionMerge.eventDigest("e\(i)"), nowMs: 0, ttlSeconds: 60)
        }
        XCTAssertEqual(s?.recentEventDigests.count, 64)
        XCTAssertEqual(s?.recentEventDigests.first, SessionMerge.eventDigest("e7"))
        XCTAssertEqual(s?.recentEventDigests.last, SessionMerge.eventDigest("e70"))
        XCTAssertEqual(s?.recentEventIds, [])
        // 64 remembered events take 8 bytes each (plus the field's 3-byte header).
        let withoutIds = s.map { var copy = $0; copy.recentEventDigests = []; return copy.serializedSize() }
        XCTAssertEqual(s.map { $0.serializedSize() } ?? 0, (withoutIds ?? 0) + 64 * 8 + 3)
    }

    func testEventId_explicitOrStableHash() {
        XCTAssertEqual(SessionMerge.eventId(for: web), "e1")
        var noId = web
        noId.eventId = ""
        let h = SessionMerge.eventId(for: noId)
        XCTAssertTrue(h.hasPrefix("h:"))
        XCTAssertEqual(h.count, 18)
        XCTAssertEqual(h, SessionMerge.eventId(for: noId), "deterministic")
        var other = noId
        other.slots["origin"] = "EWR"
        XCTAssertNotEqual(h, SessionMerge.eventId(for: other))
    }

    func testContext_slotsPlusIntentAndVersion() {
        var s = SessionMerge.apply(web, to: nil, version: 3, eventDigest: SessionMerge.eventDigest("e"), nowMs: 0, ttlSeconds: 60)
        s.slots["intent"] = "shadowed"
        var w = JSONWriter()
        SessionMerge.writeContext(s, restoredFrom: "web-chat", to: &w)
        XCTAssertEqual(
            w.string,
            #"{"destination":"LHR","origin":"JFK","intent":"book_flight","sessionVersion":3,"restoredFrom":"web-chat"}"#)
    }
}

final class BackoffTests: XCTestCase {
    func testBackoff_boundsAndCap() {
        let b = Backoff(baseMs: 2, capMs: 100)
        XCTAssertEqual(b.ceilingMs(attempt: 0), 2)
        XCTAssertEqual(b.ceilingMs(attempt: 3), 16)
        XCTAssertEqual(b.ceilingMs(attempt: 6), 100)
        XCTAssertEqual(b.ceilingMs(attempt: 1000), 100, "no overflow for huge attempts")
        XCTAssertEqual(b.delayMs(attempt: 3, unit: 0), 0)
        XCTAssertEqual(b.delayMs(attempt: 3, unit: 0.5), 8)
        XCTAssertEqual(b.delayMs(attempt: 3, unit: 7), 16, "unit is clamped")
        for attempt in 0..<20 {
            let d = b.delayMs(attempt: attempt, unit: Double.random(in: 0..<1))
            XCTAssertTrue(d >= 0 && d <= 100)
        }
    }
}
