import CSQLite
import DialogWire
import Foundation
import Identity
import Primitives
import SessionStore
import TestSupport
import XCTest
@testable import SessionService

/// SPEC "Identity links" through the webhook, as a Cognigy flow meets them.
final class IdentityLinkTests: ServiceTestCase {
    func answer(_ body: String, _ file: StaticString = #filePath, _ line: UInt = #line) throws -> JSONValue {
        let r = try post(body)
        XCTAssertEqual(r.status, 200, r.text, file: file, line: line)
        return try json(r)
    }

    func testWebChatThenWhatsAppByPhoneOnly_restoresIntoTheWhatsAppSession() throws {
        let fake = try FakeCognigy()
        defer { fake.stop() }
        try start(["COGNIGY_API_BASE_URL": fake.baseURL, "COGNIGY_API_KEY": "k", "IDENTITY_HASH_KEY": "a-long-test-secret-0123"])
        let web = try answer(
            #"{"channel":"webchat","userId":"visitor-7","sessionId":"web-s1","identities":{"phone":"+49 151 2345678","email":""},"intent":"book","slots":{"flight":"LH123","date":"2026-12-01"}}"#)
        XCTAssertEqual(web["linkedBy"], .string("new"))
        XCTAssertEqual(web["linkConflicts"], .array([]))
        guard case .string(let id)? = web["conversationId"] else { return XCTFail("no id") }
        XCTAssertTrue(id.hasPrefix("c-") && id.count == 34, id)

        // WhatsApp: Cognigy's user id is the number itself; the flow passes it as the phone.
        let wa = try answer(
            #"{"channel":"whatsapp","userId":"4915123456 78","sessionId":"wa-s1","identities":{"phone":"0049-151-2345678"},"intent":"status"}"#)
        XCTAssertEqual(wa["conversationId"], .string(id))
        XCTAssertEqual(wa["linkedBy"], .string("identity:phone"))
        XCTAssertEqual(wa["sessionVersion"], .number("2"))
        XCTAssertEqual(wa["channelSwitched"], .bool(true))
        XCTAssertEqual(wa["restore"], .string("sent"))
        XCTAssertEqual(wa["context"]?["flight"], .string("LH123"))
        let inject = try XCTUnwrap(fake.injects.last)
        XCTAssertEqual(inject.sessionId, "wa-s1")
        let body = try JSONParser.parse(Array(inject.body.utf8))
        XCTAssertEqual(body["userId"], .string("4915123456 78"))
        XCTAssertEqual(body["context"]?["flight"], .string("LH123"))
        XCTAssertEqual(body["context"]?["restoredFrom"], .string("webchat"))

        // The next WhatsApp turn finds it by the channel user alone.
        let next = try answer(#"{"channel":"whatsapp","userId":"4915123456 78","sessionId":"wa-s1","slots":{"seat":"12A"}}"#)
        XCTAssertEqual(next["conversationId"], .string(id))
        XCTAssertEqual(next["linkedBy"], .string("user"))

        // Snapshots keep no identity values; links keep hashes only.
        let path = directory.appendingPathComponent("sessions.sqlite").path
        let dump = try Data(contentsOf: URL(fileURLWithPath: path)) + ((try? Data(contentsOf: URL(fileURLWithPath: path + "-wal"))) ?? Data())
        for secret in ["491512345678", "2345678", "visitor-7\n"] {
            XCTAssertNil(dump.range(of: Data(secret.utf8)), secret)
        }
    }

    func testExplicitConversationIdWins_andForeignLinksAreConflicts() throws {
        try start()
        let a = try answer(#"{"conversationId":"conv-a","channel":"web","identities":{"email":"Ann@Example.com"}}"#)
        XCTAssertEqual(a["linkedBy"], .string("conversationId"))
        let b = try answer(#"{"conversationId":"conv-b","channel":"voice","identities":{"email":"ann@example.com","phone":"+1 202 555 0143"}}"#)
        XCTAssertEqual(b["conversationId"], .string("conv-b"))
        XCTAssertEqual(b["linkConflicts"], .array([.string("identity:email")]))
        // The phone was free, so it now points at conv-b; the e-mail still at conv-a.
        XCTAssertEqual(try json(get("/links?kind=phone&value=12025550143"))["conversationId"], .string("conv-b"))
        XCTAssertEqual(try json(get("/links?kind=email&value=ANN%40example.com"))["conversationId"], .string("conv-a"))
        // Without a conversation id, the first identity in key order wins: email < phone.
        let c = try answer(#"{"channel":"sms","identities":{"phone":"12025550143","email":"ann@example.com"}}"#)
        XCTAssertEqual(c["conversationId"], .string("conv-a"))
        XCTAssertEqual(c["linkedBy"], .string("identity:email"))
        XCTAssertEqual(c["linkConflicts"], .array([.string("identity:phone")]))
    }

    func testInvalidOrMissingIdentities_400() throws {
        try start()
        let bad: [(String, String)] = [
            (#"{"channel":"web","identities":{"phone":"12345"}}"#, "phone"),
            (#"{"channel":"web","identities":{"email":"a@b@c"}}"#, "e-mail"),
            (#"{"channel":"web","identities":{"Phone":"123456"}}"#, "kind"),
            (#"{"channel":"web","identities":{"crm":"a\u0000b"}}"#, "control"),
            (#"{"channel":"web","identities":{"crm":true}}"#, "string"),
            (#"{"channel":"web","identities":{"email":""}}"#, "required"),
            (#"{"channel":"web"}"#, "required"),
            (#"{"identities":{"email":"a@b.c"}}"#, "channel"),
        ]
        for (body, word) in bad {
            let r = try post(body)
            XCTAssertEqual(r.status, 400, body)
            XCTAssertTrue(r.text.contains(word), "\(body) → \(r.text)")
        }
    }

    func testLinksRoute_findsAndErases() throws {
        try start()
        let a = try answer(#"{"channel":"whatsapp","userId":"4915100000001","identities":{"phone":"+4915100000001","email":"x@y.z"}}"#)
        guard case .string(let id)? = a["conversationId"] else { return XCTFail() }
        for query in ["kind=phone&value=%2B49%20151%2000000001", "kind=email&value=X%40Y.Z", "channel=whatsapp&userId=4915100000001"] {
            let r = try get("/links?\(query)")
            XCTAssertEqual(r.status, 200, query)
            XCTAssertEqual(try json(r)["conversationId"], .string(id))
        }
        XCTAssertEqual(try get("/links?kind=phone&value=4915199999999").status, 404)
        XCTAssertEqual(try get("/links?kind=phone&value=12").status, 400)
        XCTAssertEqual(try get("/links?kind=phone").status, 400)
        XCTAssertEqual(try get("/links?kind=phone&value=123456&channel=x").status, 400)
        XCTAssertEqual(try get("/links?channel=web&userId=").status, 400)
        XCTAssertEqual(try get("/links?kind=phone&value=").status, 400)

        XCTAssertEqual(try RawHTTPClient.request(port: port, method: "DELETE", path: "/sessions/\(id)").status, 204)
        XCTAssertEqual(try get("/links?kind=email&value=x@y.z").status, 404)
        XCTAssertEqual(try linkRows(), 0)
        // A later event starts a new conversation.
        let again = try answer(#"{"channel":"whatsapp","userId":"4915100000001","identities":{"phone":"+4915100000001"}}"#)
        XCTAssertNotEqual(again["conversationId"], .string(id))
        XCTAssertEqual(again["linkedBy"], .string("new"))
        XCTAssertEqual(again["sessionVersion"], .number("1"))
    }

    func testLinksRoute_needsTheAdminToken() throws {
        try start(["ADMIN_TOKEN": "t0ken"])
        XCTAssertEqual(try get("/links?kind=phone&value=123456").status, 401)
        XCTAssertEqual(try get("/links?kind=phone&value=123456", headers: [("Authorization", "Bearer t0ken")]).status, 404)
    }

    func testRedeliveredEventWithoutConversationId_isADuplicateOfTheSameConversation() throws {
        try start()
        let body = #"{"channel":"web","userId":"u-1","eventId":"in-1","slots":{"a":"1"}}"#
        let first = try answer(body)
        let second = try answer(body)
        XCTAssertEqual(second["status"], .string("duplicate"))
        XCTAssertEqual(second["conversationId"], first["conversationId"])
        XCTAssertEqual(second["linkedBy"], .string("user"))
    }

    /// SPEC: concurrent first events of one person end in one conversation. Three apps
    /// (replicas) on one SQLite file, 16 threads each, same phone, no conversation id.
    func testRacingFirstEventsOfOnePerson_oneConversation() throws {
        try start()
        var replicas: [ServiceApp] = [app]
        for _ in 0..<2 {
            var environment = ["HOST": "127.0.0.1", "PORT": "0", "SQLITE_PATH": directory.appendingPathComponent("sessions.sqlite").path]
            environment["LOG_LEVEL"] = "warn"
            let other = try ServiceApp(
                configuration: try ServiceConfiguration.load(
                    environment: environment, configFile: directory.appendingPathComponent("config.json").path),
                logger: Logger(level: .error) { _ in })
            try other.start()
            replicas.append(other)
        }
        defer { for other in replicas.dropFirst() { _ = other.stop() } }
        let ports = replicas.map { $0.server.port }
        let ids = Locked<[String: Int]>([:])
        let failures = Locked<[String]>([])
        let group = DispatchGroup()
        for t in 0..<48 {
            group.enter()
            spawnThread(name: "test") {
                defer { group.leave() }
                let body = #"{"channel":"ch\#(t % 3)","identities":{"phone":"+44 7700 900123"},"eventId":"e\#(t)","slots":{"s\#(t)":"v"}}"#
                for _ in 0..<20 {
                    guard let r = try? Self.postJSON(port: ports[t % 3], body) else { continue }
                    if r.status == 503 { usleep(50_000); continue }
                    guard r.status == 200, let j = try? JSONParser.parse(r.body), case .string(let id)? = j["conversationId"] else {
                        failures.withLock { $0.append("\(r.status) \(r.text)") }
                        return
                    }
                    ids.withLock { $0[id, default: 0] += 1 }
                    return
                }
                failures.withLock { $0.append("gave up") }
            }
        }
        group.wait()
        XCTAssertEqual(failures.withLock { $0 }, [])
        let seen = ids.withLock { $0 }
        XCTAssertEqual(seen.count, 1, "\(seen)")
        guard let id = seen.keys.first else { return }
        let latest = try json(get("/sessions/\(id)"))
        XCTAssertEqual(latest["sessionVersion"], .number("48"))
        for t in 0..<48 { XCTAssertEqual(latest["slots"]?["s\(t)"], .string("v"), "slot s\(t) lost") }
    }

    func linkRows() throws -> Int {
        var db: OpaquePointer?
        guard sqlite3_open(directory.appendingPathComponent("sessions.sqlite").path, &db) == SQLITE_OK else { return -1 }
        defer { sqlite3_close(db) }
        var stmt: OpaquePointer?
        sqlite3_prepare_v2(db, "SELECT count(*) FROM links", -1, &stmt, nil)
        defer { sqlite3_finalize(stmt) }
        guard sqlite3_step(stmt) == SQLITE_ROW else { return -1 }
        return Int(sqlite3_column_int64(stmt, 0))
    }
}

/// The resolver's time rules with a clock the test moves: a young link to a conversation
/// with no version yet is live (its writer is about to write it); an old one is dead and
/// replaced; an expired link is absent.
final class LinkResolverTests: XCTestCase {
    var directory: URL!
    let now = Locked<Int64>(1_800_000_000_000)

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("resolver-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func makeResolver() throws -> (LinkResolver, SQLiteStore, SQLiteLinkStore) {
        let config = SQLiteStore.Configuration(path: directory.appendingPathComponent("s.sqlite").path)
        let store = try SQLiteStore(configuration: config)
        let links = try SQLiteLinkStore(configuration: config)
        var limits = LinkResolver.Limits()
        limits.sessionTTLSeconds = 3600
        let clock = now
        let resolver = LinkResolver(
            links: links, store: store, hasher: LinkHasher(key: Array("key".utf8)), limits: limits,
            logger: Logger(level: .error) { _ in }, clockMs: { clock.withLock { $0 } })
        return (resolver, store, links)
    }

    let phone = LinkSubject.identity(kind: "phone", value: "491512345678")

    func testYoungLinkWithoutVersionIsLive_oldOneIsReplaced() throws {
        let (resolver, _, links) = try makeResolver()
        let first = try resolver.resolve(conversationId: "", subjects: [phone])
        XCTAssertEqual(first.linkedBy, "new")
        // 59 s later, still no version written: the link stands (its writer may be slow).
        now.withLock { $0 += 59_000 }
        let second = try resolver.resolve(conversationId: "", subjects: [phone])
        XCTAssertEqual(second.conversationId, first.conversationId)
        XCTAssertEqual(second.linkedBy, "identity:phone")
        // Past the grace with still no version: dead, replaced by a new conversation.
        now.withLock { $0 += 2_000 }
        let third = try resolver.resolve(conversationId: "", subjects: [phone])
        XCTAssertEqual(third.linkedBy, "new")
        XCTAssertNotEqual(third.conversationId, first.conversationId)
        XCTAssertEqual(try links.link(resolver.hasher.linkKey(phone))?.conversationId, third.conversationId)
    }

    func testLinkToALiveConversationStands_andIsKeptAliveWithIt() throws {
        let (resolver, store, links) = try makeResolver()
        let first = try resolver.resolve(conversationId: "", subjects: [phone])
        var s = SessionSnapshot()
        s.conversationId = first.conversationId
        s.sessionVersion = 1
        s.updatedAt = now.withLock { $0 }
        s.expiresAt = now.withLock { $0 } / 1000 + 3600
        _ = try store.insert(s, after: nil)
        let key = resolver.hasher.linkKey(phone)
        let createdExpiry = try XCTUnwrap(links.link(key)).expiresAt
        // Half an hour on the link is renewed (no earlier: one write per half TTL).
        now.withLock { $0 += 1_000_000 }
        _ = try resolver.resolve(conversationId: "", subjects: [phone])
        XCTAssertEqual(try links.link(key)?.expiresAt, createdExpiry)
        now.withLock { $0 += 900_000 }
        let again = try resolver.resolve(conversationId: "", subjects: [phone])
        XCTAssertEqual(again.conversationId, first.conversationId)
        XCTAssertEqual(try links.link(key)?.expiresAt, now.withLock { $0 } / 1000 + 3600)
    }

    func testExpiredLinkIsAbsent() throws {
        let (resolver, _, _) = try makeResolver()
        let first = try resolver.resolve(conversationId: "", subjects: [phone])
        now.withLock { $0 += 3_601_000 }
        let later = try resolver.resolve(conversationId: "", subjects: [phone])
        XCTAssertEqual(later.linkedBy, "new")
        XCTAssertNotEqual(later.conversationId, first.conversationId)
    }

    /// Different identity sets racing: this replica made up a new conversation, wrote the
    /// e-mail link, then lost the phone link to another replica. It takes back the e-mail
    /// link and joins the winner's conversation.
    func testLoserOfARaceTakesBackItsLinks() throws {
        let (plain, store, links) = try makeResolver()
        let email = LinkSubject.identity(kind: "email", value: "a@b.c")
        let phoneKey = plain.hasher.linkKey(phone)
        let racing = RacingLinkStore(links)
        let other = StoredLink(key: phoneKey, conversationId: "c-winner", createdAt: now.withLock { $0 }, expiresAt: 4_000_000_000)
        // Just before our phone write lands, the other replica's lands.
        racing.beforePut = { link in
            if link.key == phoneKey { _ = try? links.putLink(other, replacing: nil) }
        }
        let clock = now
        let resolver = LinkResolver(
            links: racing, store: store, hasher: plain.hasher, limits: plain.limits, logger: Logger(level: .error) { _ in },
            clockMs: { clock.withLock { $0 } })
        let resolution = try resolver.resolve(conversationId: "", subjects: [email, phone])
        XCTAssertEqual(resolution.conversationId, "c-winner")
        XCTAssertEqual(resolution.linkedBy, "identity:phone")
        XCTAssertEqual(resolution.conflicts, [])
        XCTAssertEqual(try links.link(plain.hasher.linkKey(email))?.conversationId, "c-winner")
        XCTAssertEqual(racing.deleted, 1, "the e-mail link made for the lost conversation is taken back")
    }
}

/// A link store where another writer's write can be slipped in before ours.
final class RacingLinkStore: LinkStore, @unchecked Sendable {
    let inner: any LinkStore
    var beforePut: (StoredLink) -> Void = { _ in }
    var deleted = 0
    init(_ inner: any LinkStore) { self.inner = inner }
    func link(_ key: String) throws(StoreError) -> StoredLink? { try inner.link(key) }
    func putLink(_ link: StoredLink, replacing: StoredLink?) throws(StoreError) -> Bool {
        beforePut(link)
        return try inner.putLink(link, replacing: replacing)
    }
    func touchLink(_ key: String, conversationId: String, expiresAt: Int64) throws(StoreError) {
        try inner.touchLink(key, conversationId: conversationId, expiresAt: expiresAt)
    }
    func deleteLink(_ link: StoredLink) throws(StoreError) -> Bool {
        deleted += 1
        return try inner.deleteLink(link)
    }
    func deleteLinks(conversationId: String) throws(StoreError) -> Int { try inner.deleteLinks(conversationId: conversationId) }
    func sweepExpiredLinks(now: Int64) throws(StoreError) -> Int { try inner.sweepExpiredLinks(now: now) }
}
