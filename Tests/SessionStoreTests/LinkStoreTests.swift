import Foundation
import Primitives
import XCTest
@testable import SessionStore

/// The link store contract, on SQLite; `DynamoDBLinkStoreTests` runs it again on moto.
class LinkStoreContractTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("links-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func makeStore() throws -> any LinkStore {
        try SQLiteLinkStore(configuration: .init(path: directory.appendingPathComponent("s.sqlite").path))
    }

    static func link(_ key: String, _ conversation: String, createdAt: Int64 = 1_000, expiresAt: Int64 = 4_000_000_000) -> StoredLink {
        StoredLink(key: key, conversationId: conversation, createdAt: createdAt, expiresAt: expiresAt)
    }

    func testCreateThenRead() throws {
        let store = try makeStore()
        XCTAssertNil(try store.link("k1"))
        XCTAssertTrue(try store.putLink(Self.link("k1", "c1"), replacing: nil))
        XCTAssertEqual(try store.link("k1"), Self.link("k1", "c1"))
    }

    func testSecondCreate_losesAndChangesNothing() throws {
        let store = try makeStore()
        XCTAssertTrue(try store.putLink(Self.link("k1", "c1"), replacing: nil))
        XCTAssertFalse(try store.putLink(Self.link("k1", "c2", createdAt: 2_000), replacing: nil))
        XCTAssertEqual(try store.link("k1")?.conversationId, "c1")
    }

    func testReplace_onlyWhileStillAsRead() throws {
        let store = try makeStore()
        let old = Self.link("k1", "c1")
        XCTAssertTrue(try store.putLink(old, replacing: nil))
        let first = Self.link("k1", "c2", createdAt: 2_000)
        XCTAssertTrue(try store.putLink(first, replacing: old))
        // A second replacer that read `old` too comes too late.
        XCTAssertFalse(try store.putLink(Self.link("k1", "c3", createdAt: 3_000), replacing: old))
        XCTAssertEqual(try store.link("k1"), first)
    }

    func testTouch_extendsOnlyTheOwnersLinkAndNeverShortens() throws {
        let store = try makeStore()
        XCTAssertTrue(try store.putLink(Self.link("k1", "c1", expiresAt: 100), replacing: nil))
        try store.touchLink("k1", conversationId: "c2", expiresAt: 500)
        XCTAssertEqual(try store.link("k1")?.expiresAt, 100)
        try store.touchLink("k1", conversationId: "c1", expiresAt: 500)
        XCTAssertEqual(try store.link("k1")?.expiresAt, 500)
        try store.touchLink("k1", conversationId: "c1", expiresAt: 200)
        XCTAssertEqual(try store.link("k1")?.expiresAt, 500)
        try store.touchLink("missing", conversationId: "c1", expiresAt: 500)
        XCTAssertNil(try store.link("missing"))
    }

    func testDeleteLink_onlyAsWritten() throws {
        let store = try makeStore()
        let mine = Self.link("k1", "c1")
        XCTAssertTrue(try store.putLink(mine, replacing: nil))
        XCTAssertFalse(try store.deleteLink(Self.link("k1", "c1", createdAt: 9)))
        XCTAssertFalse(try store.deleteLink(Self.link("k1", "c9")))
        XCTAssertTrue(try store.deleteLink(mine))
        XCTAssertNil(try store.link("k1"))
    }

    func testDeleteLinks_removesEveryLinkOfTheConversationOnly() throws {
        let store = try makeStore()
        for i in 0..<30 { XCTAssertTrue(try store.putLink(Self.link("a\(i)", "c1"), replacing: nil)) }
        XCTAssertTrue(try store.putLink(Self.link("b", "c2"), replacing: nil))
        // Reads on the same store first (a read must not keep a write from committing).
        XCTAssertNotNil(try store.link("a0"))
        XCTAssertEqual(try eventually { try store.deleteLinks(conversationId: "c1") }, 30)
        for i in 0..<30 { XCTAssertNil(try store.link("a\(i)")) }
        XCTAssertEqual(try store.link("b")?.conversationId, "c2")
        XCTAssertEqual(try store.deleteLinks(conversationId: "nothing"), 0)
    }

    /// DynamoDB's index is eventually consistent: a real caller (the DELETE route) sees
    /// what it has; here the count is polled briefly.
    func eventually(_ body: () throws -> Int) throws -> Int { try body() }

    func testConcurrentCreates_exactlyOneWinner() throws {
        let store = try makeStore()
        let winners = Locked<[String]>([])
        let group = DispatchGroup()
        for t in 0..<8 {
            group.enter()
            spawnThread(name: "test") {
                defer { group.leave() }
                for k in 0..<10 {
                    if (try? store.putLink(Self.link("k\(k)", "c\(t)", createdAt: Int64(t)), replacing: nil)) == true {
                        winners.withLock { $0.append("k\(k)=c\(t)") }
                    }
                }
            }
        }
        group.wait()
        let won = winners.withLock { $0 }
        XCTAssertEqual(won.count, 10, "\(won)")
        for entry in won {
            let parts = entry.split(separator: "=")
            XCTAssertEqual(try store.link(String(parts[0]))?.conversationId, String(parts[1]))
        }
    }

    func testSweepExpiredLinks() throws {
        let store = try makeStore()
        XCTAssertTrue(try store.putLink(Self.link("old", "c1", expiresAt: 100), replacing: nil))
        XCTAssertTrue(try store.putLink(Self.link("new", "c1", expiresAt: 4_000_000_000), replacing: nil))
        XCTAssertEqual(try store.sweepExpiredLinks(now: 100), 1)
        XCTAssertNil(try store.link("old"))
        XCTAssertNotNil(try store.link("new"))
    }
}

final class SQLiteLinkStoreTests: LinkStoreContractTests {
    /// The links share the sessions' file, 0600 like it.
    func testLinksLiveInTheSessionsFile() throws {
        let path = directory.appendingPathComponent("s.sqlite").path
        _ = try SQLiteStore(configuration: .init(path: path))
        let links = try SQLiteLinkStore(configuration: .init(path: path))
        XCTAssertTrue(try links.putLink(Self.link("k", "c"), replacing: nil))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
    }
}

final class DynamoDBLinkStoreTests: LinkStoreContractTests {
    override func makeStore() throws -> any LinkStore {
        let endpoint = try Moto.requireEndpoint()
        let store = DynamoDBLinkStore(client: Moto.client(endpoint), table: "l-\(UUID().uuidString.prefix(12))")
        try store.createTableIfMissing()
        return store
    }

    override func eventually(_ body: () throws -> Int) throws -> Int { try body() }

    /// DynamoDB's TTL removes expired links itself.
    override func testSweepExpiredLinks() throws {
        let store = try makeStore() as! DynamoDBLinkStore
        XCTAssertEqual(try store.sweepExpiredLinks(now: Int64.max), 0)
        let ttl = try store.table.client.call("DescribeTimeToLive", Array(#"{"TableName":"\#(store.table.name)"}"#.utf8))
        XCTAssertEqual(ttl["TimeToLiveDescription"]?["AttributeName"], .string("ExpiresAt"))
    }
}
