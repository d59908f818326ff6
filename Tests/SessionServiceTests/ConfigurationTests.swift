import Foundation
import XCTest
@testable import SessionService

final class ConfigurationTests: XCTestCase {
    private func load(_ env: [String: String], file: String? = nil) throws -> ServiceConfiguration {
        try ServiceConfiguration.load(environment: env, configFile: file)
    }

    private func assertError(_ env: [String: String], variable: String, file: String? = nil, line: UInt = #line) {
        XCTAssertThrowsError(try load(env, file: file), line: line) { error in
            let e = error as? ConfigError
            XCTAssertEqual(e?.variable, variable, line: line)
            XCTAssertFalse(e?.description.contains("\n") ?? true, "one line", line: line)
        }
    }

    private func tempFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testDefaults() throws {
        let c = try load(["CONFIG_FILE": try tempFile("{}")])
        XCTAssertEqual(c.http.host, "0.0.0.0")
        XCTAssertEqual(c.http.port, 8080)
        XCTAssertEqual(c.store, .sqlite)
        XCTAssertEqual(c.sqlitePath, "./data/sessions.sqlite")
        XCTAssertEqual(c.sessionTTLSeconds, 604_800)
        XCTAssertEqual(c.http.maxBodyBytes, 1_048_576)
        XCTAssertEqual(c.restoreInlineTimeoutMs, 3000)
        XCTAssertEqual(c.awsRegion, "us-east-1")
        XCTAssertEqual(c.logLevel, .info)
        XCTAssertNil(c.webhookAPIKey)
        XCTAssertEqual(c.snapshotCacheEntries, 10_000)
        XCTAssertEqual(c.sqliteReadConnections, 4)
        XCTAssertEqual(c.http.idleHandoffDelayMs, 20)
        XCTAssertEqual(c.http.maxIdleWorkers, 64)
        XCTAssertNil(c.identityHashKey)
        XCTAssertEqual(c.dynamoLinksTable, "CognigySessionLinks")
    }

    /// The limits added for scale and links: each is read, and refused out of range with
    /// one line naming the variable.
    func testScaleAndLinkLimits() throws {
        let file = try tempFile("{}")
        let c = try load(
            ["SNAPSHOT_CACHE_ENTRIES": "0", "SQLITE_READ_CONNECTIONS": "8", "SQLITE_CHECKPOINT_PAGES": "5000", "IDLE_HANDOFF_MS": "0", "MAX_IDLE_WORKERS": "2",
             "IDENTITY_HASH_KEY": "k-0123456789abcdef", "DYNAMODB_LINKS_TABLE": "L"], file: file)
        XCTAssertEqual(c.snapshotCacheEntries, 0)
        XCTAssertEqual(c.sqliteReadConnections, 8)
        XCTAssertEqual(c.sqliteCheckpointPages, 5000)
        XCTAssertEqual(try load([:], file: file).sqliteCheckpointPages, 100, "small checkpoints: the shortest tail measured")
        XCTAssertEqual(c.http.idleHandoffDelayMs, 0)
        XCTAssertEqual(c.http.maxIdleWorkers, 2)
        XCTAssertEqual(c.identityHashKey, "k-0123456789abcdef")
        XCTAssertEqual(c.dynamoLinksTable, "L")
        for (name, bad) in [("SNAPSHOT_CACHE_ENTRIES", "-1"), ("SQLITE_READ_CONNECTIONS", "0"), ("SQLITE_CHECKPOINT_PAGES", "9"), ("IDLE_HANDOFF_MS", "x"),
                            ("MAX_IDLE_WORKERS", "-3"), ("DYNAMODB_LINKS_TABLE", "CognigySessions")] {
            XCTAssertThrowsError(try load([name: bad], file: file), name) {
                XCTAssertEqual(($0 as? ConfigError)?.variable, name)
            }
        }
    }

    func testPrecedence_defaultsThenFileThenEnvironment() throws {
        let file = try tempFile(#"{"PORT": 9000, "LOG_LEVEL": "debug", "DYNAMODB_CREATE_TABLE": true}"#)
        let fromFile = try load([:], file: file)
        XCTAssertEqual(fromFile.http.port, 9000)
        XCTAssertEqual(fromFile.logLevel, .debug)
        XCTAssertTrue(fromFile.dynamoCreateTable)
        let fromEnv = try load(["PORT": "9100", "AWS_DEFAULT_REGION": "eu-west-1"], file: file)
        XCTAssertEqual(fromEnv.http.port, 9100)
        XCTAssertEqual(fromEnv.awsRegion, "eu-west-1")
        XCTAssertEqual(try load(["AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "x"], file: file).awsRegion, "eu-central-1")
    }

    /// OUTBOX_STORE follows SESSION_STORE unless set; a shared outbox over a local session
    /// store, an unknown value or a region SigV4 cannot use stops start-up naming the variable.
    func testOutboxStore_followsSessionStore_contradictionsRefused() throws {
        let empty = try tempFile("{}")
        let sqlite = try load(["CONFIG_FILE": empty])
        XCTAssertEqual(sqlite.outboxStore, .sqlite)
        XCTAssertEqual(sqlite.dynamoOutboxTable, "CognigySessionOutbox")
        XCTAssertEqual(try load(["CONFIG_FILE": empty, "SESSION_STORE": "dynamodb"]).outboxStore, .dynamodb)
        XCTAssertEqual(try load(["CONFIG_FILE": empty, "SESSION_STORE": "dynamodb", "OUTBOX_STORE": "SQLite"]).outboxStore, .sqlite)
        XCTAssertEqual(try load(["CONFIG_FILE": empty, "SESSION_STORE": "dynamodb", "DYNAMODB_OUTBOX_TABLE": "Q"]).dynamoOutboxTable, "Q")
        assertError(["CONFIG_FILE": empty, "OUTBOX_STORE": "dynamodb"], variable: "OUTBOX_STORE")
        assertError(["CONFIG_FILE": empty, "SESSION_STORE": "dynamodb", "OUTBOX_STORE": "redis"], variable: "OUTBOX_STORE")
        assertError(["CONFIG_FILE": empty, "SESSION_STORE": "dynamodb", "DYNAMODB_OUTBOX_TABLE": " "], variable: "DYNAMODB_OUTBOX_TABLE")
        assertError(["CONFIG_FILE": empty, "DYNAMODB_OUTBOX_TABLE": "CognigySessions"], variable: "DYNAMODB_OUTBOX_TABLE")
        assertError(["CONFIG_FILE": empty, "DYNAMODB_OUTBOX_TABLE": "CognigySessionLinks"], variable: "DYNAMODB_OUTBOX_TABLE")
        assertError(["CONFIG_FILE": empty, "SESSION_STORE": "dynamodb", "AWS_REGION": "eu central"], variable: "AWS_REGION")
        assertError(["CONFIG_FILE": empty, "SESSION_STORE": "dynamodb", "AWS_DEFAULT_REGION": "EU/1"], variable: "AWS_DEFAULT_REGION")
    }

    func testEndpointsLoseTrailingSlash() throws {
        let c = try load(["CONFIG_FILE": try tempFile("{}"), "AWS_ENDPOINT_URL": "http://localhost:8000/"])
        XCTAssertEqual(c.dynamoEndpoint, "http://localhost:8000")
        let d = try load(["CONFIG_FILE": try tempFile("{}"), "AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_DYNAMODB": "https://b"])
        XCTAssertEqual(d.dynamoEndpoint, "https://b")
    }

    func testBadValues_oneLineNamingTheVariable() throws {
        let empty = try tempFile("{}")
        assertError(["CONFIG_FILE": empty, "PORT": "http"], variable: "PORT")
        assertError(["CONFIG_FILE": empty, "PORT": "70000"], variable: "PORT")
        assertError(["CONFIG_FILE": empty, "SESSION_STORE": "redis"], variable: "SESSION_STORE")
        assertError(["CONFIG_FILE": empty, "MAX_BODY_BYTES": "-1"], variable: "MAX_BODY_BYTES")
        assertError(["CONFIG_FILE": empty, "LOG_LEVEL": "loud"], variable: "LOG_LEVEL")
        // Above 512 characters a conversation id could pass DynamoDB's 2,048-byte key limit.
        assertError(["CONFIG_FILE": empty, "MAX_ID_LENGTH": "513"], variable: "MAX_ID_LENGTH")
        assertError(["CONFIG_FILE": empty, "COGNIGY_API_BASE_URL": "api.cognigy.ai"], variable: "COGNIGY_API_BASE_URL")
        assertError(["CONFIG_FILE": empty, "DYNAMODB_CREATE_TABLE": "maybe"], variable: "DYNAMODB_CREATE_TABLE")
        assertError(["CONFIG_FILE": empty, "COGNIGY_CLIENT_ID": "id"], variable: "COGNIGY_CLIENT_ID")
        assertError(["CONFIG_FILE": empty, "AWS_ACCESS_KEY_ID": "id"], variable: "AWS_ACCESS_KEY_ID")
        assertError(["CONFIG_FILE": empty, "MAX_REQUEST_LINE_BYTES": "5000", "MAX_HEADER_BYTES": "4096"], variable: "MAX_REQUEST_LINE_BYTES")
        assertError([:], variable: "PROT", file: try tempFile(#"{"PROT": 1}"#))
        assertError([:], variable: "CONFIG_FILE", file: try tempFile("{nope"))
        assertError([:], variable: "CONFIG_FILE", file: "/nonexistent/config.json")
    }

    func testDescribeMasksSecrets() throws {
        let c = try load(["CONFIG_FILE": try tempFile("{}"), "ADMIN_TOKEN": "s3cret", "WEBHOOK_API_KEY": "k3y"])
        let text = c.describe()
        XCTAssertTrue(text.contains("ADMIN_TOKEN=****"))
        XCTAssertFalse(text.contains("s3cret"))
        XCTAssertFalse(text.contains("k3y"))
        XCTAssertTrue(text.contains("PORT=8080"))
    }

    func testCommittedDefaultFileIsValid() throws {
        // Tests run from the package root.
        let path = "config/default.json"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("not run from the package root") }
        XCTAssertNoThrow(try load([:], file: path))
    }

    func testNewDefaults() throws {
        let c = try load(["CONFIG_FILE": try tempFile("{}")])
        XCTAssertEqual(c.sqliteSynchronous, "FULL", "SPEC: a 200 means durably stored")
        XCTAssertEqual(c.restoreTTLSeconds, 3600)
        XCTAssertTrue(c.accessLog)
        XCTAssertEqual(c.http.maxBufferedBodyBytes, 64 << 20)
        XCTAssertEqual(try load(["CONFIG_FILE": try tempFile("{}"), "SESSION_TTL_SECONDS": "1"]).sessionTTLSeconds, 1)
        assertError(["CONFIG_FILE": try tempFile("{}"), "RESTORE_TTL_SECONDS": "0"], variable: "RESTORE_TTL_SECONDS")
    }

    func testValuesFromFiles_CRLFTrimmedControlCharactersRefused() throws {
        let c = try load(["CONFIG_FILE": try tempFile("{}"), "WEBHOOK_API_KEY": "secret\r\n", "PORT": "9090\n"])
        XCTAssertEqual(c.webhookAPIKey, "secret")
        XCTAssertEqual(c.http.port, 9090)
        assertError(["CONFIG_FILE": try tempFile("{}"), "ADMIN_TOKEN": "a\u{0}b"], variable: "ADMIN_TOKEN")
        assertError(["CONFIG_FILE": try tempFile("{}"), "COGNIGY_API_KEY": "k\tk"], variable: "COGNIGY_API_KEY")
    }

    func testCognigyWithoutCredentials_refused() throws {
        assertError(["CONFIG_FILE": try tempFile("{}"), "COGNIGY_API_BASE_URL": "https://api.example.com"], variable: "COGNIGY_API_BASE_URL")
        XCTAssertNoThrow(
            try load(["CONFIG_FILE": try tempFile("{}"), "COGNIGY_API_BASE_URL": "https://api.example.com", "COGNIGY_API_KEY": "k"]))
    }

    func testURLUserinfoMasked() throws {
        let c = try load([
            "CONFIG_FILE": try tempFile("{}"), "COGNIGY_API_BASE_URL": "https://bob:hunter2@api.example.com/x", "COGNIGY_API_KEY": "k",
        ])
        XCTAssertFalse(c.describe().contains("hunter2"))
        XCTAssertTrue(c.describe().contains("COGNIGY_API_BASE_URL=https://****@api.example.com/x"))
        XCTAssertThrowsError(try load(["CONFIG_FILE": try tempFile("{}"), "AWS_ENDPOINT_URL": "ftp://u:pw@h"])) {
            XCTAssertFalse("\($0)".contains("pw@"))
        }
        XCTAssertEqual(ServiceConfiguration.maskUserinfo("http://h:1/a@b"), "http://h:1/a@b", "an @ in the path is not userinfo")
    }
}

/// AWS credentials: static keys are optional now; the chain's variables are read and checked.
final class AWSCredentialConfigurationTests: XCTestCase {
    private var empty: String!

    override func setUpWithError() throws {
        empty = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString).json").path
        try "{}".write(toFile: empty, atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: empty) }

    private func load(_ env: [String: String]) throws -> ServiceConfiguration {
        try ServiceConfiguration.load(environment: env, configFile: empty)
    }

    private func assertError(_ env: [String: String], variable: String, line: UInt = #line) {
        XCTAssertThrowsError(try load(env), line: line) { XCTAssertEqual(($0 as? ConfigError)?.variable, variable, line: line) }
    }

    func testDynamoDB_withoutStaticKeys_isAccepted() throws {
        let c = try load(["SESSION_STORE": "dynamodb"])
        XCTAssertEqual(c.store, .dynamodb)
        XCTAssertNil(c.awsAccessKeyId)
    }

    func testHalfAKeyPair_isStillAnError() {
        assertError(["SESSION_STORE": "dynamodb", "AWS_ACCESS_KEY_ID": "id"], variable: "AWS_ACCESS_KEY_ID")
        assertError(["SESSION_STORE": "dynamodb", "AWS_SECRET_ACCESS_KEY": "s"], variable: "AWS_ACCESS_KEY_ID")
    }

    func testChainVariables_reachTheCredentialEnvironment_unknownOnesDoNot() throws {
        let c = try load([
            "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/r", "AWS_ROLE_SESSION_NAME": "s",
            "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:5000", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "tok", "AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "ignored",
        ])
        XCTAssertEqual(c.awsEnvironment["AWS_ROLE_ARN"], "arn:aws:iam::1:role/r")
        XCTAssertEqual(c.awsEnvironment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], "/v2/credentials/x")
        XCTAssertEqual(c.awsEnvironment["AWS_EC2_METADATA_DISABLED"], "true")
        XCTAssertNil(c.awsEnvironment["AWS_PROFILE"])
        XCTAssertTrue(c.describe().contains("AWS_CONTAINER_AUTHORIZATION_TOKEN=****"))
    }

    func testChainVariables_checkedAtStart() {
        assertError(["AWS_ROLE_ARN": "arn:r"], variable: "AWS_WEB_IDENTITY_TOKEN_FILE")
        assertError(["AWS_WEB_IDENTITY_TOKEN_FILE": "/t"], variable: "AWS_WEB_IDENTITY_TOKEN_FILE")
        assertError(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/creds"], variable: "AWS_CONTAINER_CREDENTIALS_FULL_URI")
        assertError(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "v2/x"], variable: "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        assertError(["AWS_EC2_METADATA_SERVICE_ENDPOINT": "169.254.169.254"], variable: "AWS_EC2_METADATA_SERVICE_ENDPOINT")
        assertError(["AWS_EC2_METADATA_DISABLED": "maybe"], variable: "AWS_EC2_METADATA_DISABLED")
        assertError(["AWS_ENDPOINT_URL_STS": "sts"], variable: "AWS_ENDPOINT_URL_STS")
    }

    func testHelp_listsTheChainVariables() {
        let names = Set(ServiceConfiguration.variables.map(\.name))
        for name in [
            "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL_STS", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED",
        ] {
            XCTAssertTrue(names.contains(name), name)
        }
    }
}
