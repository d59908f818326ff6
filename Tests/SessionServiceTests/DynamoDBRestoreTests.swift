import Foundation
import SessionStore
import XCTest
@testable import SessionService

/// Every restore test again with the sessions and the outbox on DynamoDB (moto): the app
/// with SESSION_STORE=dynamodb (OUTBOX_STORE follows it), and the restorers on
/// `DynamoDBRestoreOutbox`.
final class DynamoDBRestoreTests: RestoreTests {
    /// This test's table names, fixed at its first use so a restart finds the same tables.
    private var tables: (sessions: String, links: String, outbox: String)?

    private func endpoint() throws -> String {
        let env = ProcessInfo.processInfo.environment
        guard let endpoint = env["MOTO_ENDPOINT"] else {
            if env["REQUIRE_DYNAMODB"] == "1" { XCTFail("REQUIRE_DYNAMODB=1 but MOTO_ENDPOINT is not set") }
            throw XCTSkip("needs a DynamoDB-compatible server: run scripts/test.sh (it starts moto) or set MOTO_ENDPOINT")
        }
        return endpoint
    }

    private func names() -> (sessions: String, links: String, outbox: String) {
        if let tables { return tables }
        let id = UUID().uuidString.prefix(12)
        tables = ("rs-\(id)", "rl-\(id)", "ro-\(id)")
        return tables!
    }

    override func storeEnvironment() throws -> [String: String] {
        [
            "SESSION_STORE": "dynamodb", "AWS_ENDPOINT_URL_DYNAMODB": try endpoint(), "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "DYNAMODB_TABLE": names().sessions, "DYNAMODB_LINKS_TABLE": names().links,
            "DYNAMODB_OUTBOX_TABLE": names().outbox,
            "DYNAMODB_CREATE_TABLE": "true",
        ]
    }

    override func makeQueue(_ name: String) throws -> any RestoreQueue {
        let queue = DynamoDBRestoreOutbox(
            client: DynamoDBClient(
                configuration: .init(endpoint: try endpoint(), region: "us-east-1", accessKeyId: "test", secretAccessKey: "test")),
            table: names().outbox + "-" + name.replacingOccurrences(of: ".", with: "-"))
        try queue.createTableIfMissing()
        return queue
    }

    /// The app's outbox follows SESSION_STORE.
    func testOutboxFollowsSessionStore() throws {
        try start()
        XCTAssertTrue(app!.service.restorer!.queue is DynamoDBRestoreOutbox)
    }
}
