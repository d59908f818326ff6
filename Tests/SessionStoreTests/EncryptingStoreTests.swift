import DialogWire
import Foundation
import Primitives
import XCTest
@testable import SessionStore

/// A see-through protector: `sealed:<conversation>|<field>|<value>`, so tests can check what
/// reaches the base store and that conversation and field are bound to each value.
struct MarkingProtector: FieldProtector {
    var protected: Set<String>? = nil  // nil: every slot
    func protects(slot name: String) -> Bool { protected?.contains(name) ?? true }
    func fingerprint(_ value: String) -> String { "fp(\(value))" }
    func isCurrent(_ sealed: String) -> Bool { true }
    func seal(_ value: String, conversationId: String, field: String) throws(FieldProtectionError) -> String {
        "sealed:\(conversationId)|\(field)|\(value)"
    }
    func open(_ stored: String, conversationId: String, field: String) throws(FieldProtectionError) -> String {
        if stored.hasPrefix("gone:") { throw .keyUnavailable(keyId: "old-key") }
        guard stored.hasPrefix("sealed:") else { return stored }
        let parts = stored.dropFirst("sealed:".count).split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == conversationId, parts[1] == field else { throw .corrupt }
        return String(parts[2])
    }
}

final class EncryptingStoreTests: XCTestCase {
    var directory: URL!
    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("enc-\(UUID().uuidString)")
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func snapshot() -> SessionSnapshot {
        var s = SessionStoreContractTests.snapshot("c1", 1, slots: ["iban": "DE89", "seat": "1A"])
        s.channels = ["whatsapp": ChannelState(userId: "+491701234567", sessionId: "wa-1", lastSeen: 5)]
        return s
    }

    func testProtectedFieldsSealedInTheBaseStore_openOnRead() throws {
        let base = try SQLiteStore(configuration: .init(path: directory.appendingPathComponent("s.sqlite").path))
        let store = EncryptingStore(base, protector: MarkingProtector(protected: ["iban"]))
        _ = try store.insert(snapshot(), after: nil)
        let raw = try XCTUnwrap(base.latest("c1")?.snapshot.get())
        XCTAssertEqual(raw.slots["iban"], "sealed:c1|slots.iban|DE89")
        XCTAssertEqual(raw.slots["seat"], "1A", "not in ENCRYPTED_SLOTS")
        XCTAssertEqual(raw.channels["whatsapp"]?.userId, "sealed:c1|channels.whatsapp.userId|+491701234567")
        XCTAssertEqual(raw.channels["whatsapp"]?.sessionId, "sealed:c1|channels.whatsapp.sessionId|wa-1")
        XCTAssertEqual(try store.latest("c1")?.snapshot.get(), snapshot())
        XCTAssertEqual(try store.version("c1", 1)?.snapshot.get(), snapshot())
        XCTAssertEqual(try store.versions("c1", limit: 5, before: nil).first?.snapshot.get(), snapshot())
    }

    func testUnknownKey_throwsKeyUnavailable() throws {
        let base = try SQLiteStore(configuration: .init(path: directory.appendingPathComponent("s.sqlite").path))
        var s = snapshot()
        s.slots["iban"] = "gone:xyz"
        _ = try base.insert(s, after: nil)
        let store = EncryptingStore(base, protector: MarkingProtector())
        XCTAssertThrowsError(try store.latest("c1")) { XCTAssertEqual($0 as? StoreError, .keyUnavailable(keyId: "old-key")) }
    }

    /// A value moved to another field (or conversation) does not authenticate: corrupt.
    func testMovedValue_isCorruptNamingTheField() throws {
        let base = try SQLiteStore(configuration: .init(path: directory.appendingPathComponent("s.sqlite").path))
        var s = snapshot()
        s.slots["iban"] = "sealed:c1|slots.seat|DE89"
        _ = try base.insert(s, after: nil)
        let store = EncryptingStore(base, protector: MarkingProtector())
        guard case .failure(let why)? = try store.latest("c1")?.snapshot else { return XCTFail("should be corrupt") }
        XCTAssertEqual(why, .undecryptable(field: "slots.iban"))
    }

    /// Building n+1 on n re-seals only what changed, and re-reads open nothing twice.
    func testUnchangedFields_keepTheirCiphertext() throws {
        final class Counting: FieldProtector, @unchecked Sendable {
            let inner = MarkingProtector()
            let counts = Locked((seals: 0, opens: 0))
            func protects(slot name: String) -> Bool { true }
            func fingerprint(_ value: String) -> String { value }
            func isCurrent(_ sealed: String) -> Bool { true }
            func seal(_ value: String, conversationId: String, field: String) throws(FieldProtectionError) -> String {
                counts.withLock { $0.seals += 1 }
                return try inner.seal(value, conversationId: conversationId, field: field)
            }
            func open(_ stored: String, conversationId: String, field: String) throws(FieldProtectionError) -> String {
                counts.withLock { $0.opens += 1 }
                return try inner.open(stored, conversationId: conversationId, field: field)
            }
        }
        let base = try SQLiteStore(configuration: .init(path: directory.appendingPathComponent("s.sqlite").path))
        let protector = Counting()
        let store = EncryptingStore(base, protector: protector)
        _ = try store.insert(snapshot(), after: nil)
        XCTAssertEqual(protector.counts.withLock { $0.seals }, 4, "2 slots, a user id and a session id")
        let latest = try XCTUnwrap(store.latest("c1"))
        XCTAssertEqual(protector.counts.withLock { $0.opens }, 0, "what this process sealed opens from the cache")
        var next = try latest.snapshot.get()
        next.sessionVersion = 2
        next.slots["meal"] = "veg"
        _ = try store.insert(next, after: latest.basis)
        XCTAssertEqual(protector.counts.withLock { $0.seals }, 5, "only the new slot was sealed")
        XCTAssertEqual(try store.latest("c1")?.snapshot.get(), next)
        _ = try store.deleteConversation("c1")
        _ = try store.insert(snapshot(), after: nil)
        XCTAssertEqual(protector.counts.withLock { $0.seals }, 9, "an erased conversation's values are forgotten")
    }
}
