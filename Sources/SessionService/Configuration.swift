import AWSCredentials
import Crypto
import DialogWire
import Foundation
import HTTPClient
import HTTPServer

/// One configuration variable: its name (environment variable and config-file key),
/// default, and what it does. The table below is the single list `--help` prints.
public struct ConfigVariable: Sendable {
    public let name: String
    public let defaultValue: String?
    public let help: String
    public let secret: Bool
}

/// Bad configuration: start-up stops with `description`, one line naming the variable.
public struct ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    public let variable: String
    public let message: String
    public var description: String { "configuration error: \(variable): \(message)" }
}

public enum StoreKind: String, Sendable {
    case sqlite, dynamodb
}

public enum LogLevel: Int, Comparable, Sendable {
    case debug = 0, info, warn, error
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
    public var name: String { ["debug", "info", "warn", "error"][rawValue] }
}

/// Everything the service reads at start-up: defaults < config file < environment.
public struct ServiceConfiguration: Sendable {
    public static let variables: [ConfigVariable] = [
        .init(name: "HOST", defaultValue: "0.0.0.0", help: "listen address", secret: false),
        .init(name: "PORT", defaultValue: "8080", help: "listen port (0 = any free port)", secret: false),
        .init(name: "SESSION_STORE", defaultValue: "sqlite", help: "sqlite (embedded) or dynamodb", secret: false),
        .init(name: "SQLITE_PATH", defaultValue: "./data/sessions.sqlite", help: "SQLite file (WAL); parent folder created", secret: false),
        .init(name: "SQLITE_BUSY_TIMEOUT_MS", defaultValue: "5000", help: "wait for another writer's lock before answering 503", secret: false),
        .init(name: "SQLITE_READ_CONNECTIONS", defaultValue: "4", help: "SQLite connections reading in parallel (WAL readers never block each other)", secret: false),
        .init(name: "SQLITE_CHECKPOINT_PAGES", defaultValue: "100", help: "WAL pages at which a background thread checkpoints the sessions file (commits checkpoint inline only past 4x this)", secret: false),
        .init(name: "SQLITE_SYNCHRONOUS", defaultValue: "full", help: "full (a 200 survives power loss; fsync per group commit) or normal (survives a process crash only)", secret: false),
        .init(name: "DYNAMODB_TABLE", defaultValue: "CognigySessions", help: "DynamoDB table name", secret: false),
        .init(name: "DYNAMODB_CREATE_TABLE", defaultValue: "false", help: "create the service's tables (sessions, links) and enable their TTL if missing", secret: false),
        .init(name: "DYNAMODB_LINKS_TABLE", defaultValue: "CognigySessionLinks", help: "DynamoDB table of identity links (key LinkKey S, TTL on ExpiresAt, index ByConversation)", secret: false),
        .init(name: "DYNAMODB_REQUEST_TIMEOUT_MS", defaultValue: "2000", help: "one DynamoDB request's time limit", secret: false),
        .init(name: "DYNAMODB_DEADLINE_MS", defaultValue: "4000", help: "all retries of one DynamoDB operation end by this deadline, then 503", secret: false),
        .init(name: "DYNAMODB_MAX_ATTEMPTS", defaultValue: "6", help: "attempts per DynamoDB operation on throttling, 5xx or connection errors", secret: false),
        .init(name: "AWS_REGION", defaultValue: nil, help: "SigV4 region (else AWS_DEFAULT_REGION, else us-east-1)", secret: false),
        .init(name: "AWS_DEFAULT_REGION", defaultValue: nil, help: "SigV4 region fallback", secret: false),
        .init(name: "AWS_ENDPOINT_URL_DYNAMODB", defaultValue: nil, help: "DynamoDB endpoint override (DynamoDB Local, moto)", secret: false),
        .init(name: "AWS_ENDPOINT_URL", defaultValue: nil, help: "endpoint override for all AWS services", secret: false),
        .init(name: "AWS_ACCESS_KEY_ID", defaultValue: nil, help: "static AWS credentials (unset: the AWS chain: web identity, container, instance metadata)", secret: true),
        .init(name: "AWS_SECRET_ACCESS_KEY", defaultValue: nil, help: "static AWS credentials, with AWS_ACCESS_KEY_ID", secret: true),
        .init(name: "AWS_SESSION_TOKEN", defaultValue: nil, help: "AWS session token for static keys (sent as X-Amz-Security-Token)", secret: true),
        .init(name: "AWS_WEB_IDENTITY_TOKEN_FILE", defaultValue: nil, help: "web identity token file (EKS IRSA, OIDC), re-read on every refresh; with AWS_ROLE_ARN → STS AssumeRoleWithWebIdentity", secret: false),
        .init(name: "AWS_ROLE_ARN", defaultValue: nil, help: "role assumed with the web identity token", secret: false),
        .init(name: "AWS_ROLE_SESSION_NAME", defaultValue: nil, help: "session name for the assumed role (default cognigy-session-<epoch>)", secret: false),
        .init(name: "AWS_ENDPOINT_URL_STS", defaultValue: nil, help: "STS endpoint override (else AWS_ENDPOINT_URL, else https://sts.<region>.amazonaws.com)", secret: false),
        .init(name: "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", defaultValue: nil, help: "ECS task role: credentials path on http://169.254.170.2", secret: false),
        .init(name: "AWS_CONTAINER_CREDENTIALS_FULL_URI", defaultValue: nil, help: "container credentials URL (https, or http to loopback, 169.254.170.2 or 169.254.170.23)", secret: false),
        .init(name: "AWS_CONTAINER_AUTHORIZATION_TOKEN", defaultValue: nil, help: "Authorization header for the container credentials URL", secret: true),
        .init(name: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", defaultValue: nil, help: "file holding that Authorization header, re-read on every refresh (wins over the variable)", secret: false),
        .init(name: "AWS_EC2_METADATA_SERVICE_ENDPOINT", defaultValue: nil, help: "instance metadata (IMDSv2) address (default http://169.254.169.254)", secret: false),
        .init(name: "AWS_EC2_METADATA_DISABLED", defaultValue: nil, help: "true: never ask instance metadata for credentials", secret: false),
        .init(name: "SESSION_TTL_SECONDS", defaultValue: "604800", help: "snapshot expiry after its write (ExpiresAt); any value >= 1", secret: false),
        .init(name: "SWEEP_INTERVAL_SECONDS", defaultValue: "60", help: "how often expired SQLite rows are deleted", secret: false),
        .init(name: "COGNIGY_API_BASE_URL", defaultValue: nil, help: "Cognigy REST API base, e.g. https://api-trial.cognigy.ai (unset: restore off)", secret: false),
        .init(name: "COGNIGY_API_KEY", defaultValue: nil, help: "sent as X-API-Key", secret: true),
        .init(name: "COGNIGY_TOKEN_URL", defaultValue: nil, help: "OAuth2 token endpoint (client credentials)", secret: false),
        .init(name: "COGNIGY_CLIENT_ID", defaultValue: nil, help: "OAuth2 client id", secret: false),
        .init(name: "COGNIGY_CLIENT_SECRET", defaultValue: nil, help: "OAuth2 client secret", secret: true),
        .init(name: "COGNIGY_SCOPE", defaultValue: nil, help: "OAuth2 scope", secret: false),
        .init(name: "COGNIGY_CONTEXT_KEY", defaultValue: nil, help: "nest restored values under this context key", secret: false),
        .init(name: "RESTORE_INLINE_TIMEOUT_MS", defaultValue: "3000", help: "time a webhook waits for a restore before queueing it", secret: false),
        .init(name: "OUTBOX_STORE", defaultValue: nil, help: "where queued restores live: sqlite (OUTBOX_PATH, this host) or dynamodb (DYNAMODB_OUTBOX_TABLE, any replica delivers); default: SESSION_STORE", secret: false),
        .init(name: "OUTBOX_PATH", defaultValue: "./data/outbox.sqlite", help: "SQLite outbox: durable queue of restores still to deliver", secret: false),
        .init(name: "DYNAMODB_OUTBOX_TABLE", defaultValue: "CognigySessionOutbox", help: "DynamoDB outbox table (keys ConversationId + SessionKey, index DueIndex, TTL on ExpiresAt)", secret: false),
        .init(name: "RESTORE_TTL_SECONDS", defaultValue: "3600", help: "a queued restore not delivered this long is dropped; any value >= 1", secret: false),
        .init(name: "ENCRYPTION_KEYS", defaultValue: nil, help: "PII encryption at rest: comma list of keyId:base64(32 bytes); the first encrypts, all decrypt (new keys: --generate-key ID)", secret: true),
        .init(name: "AWS_ENDPOINT_URL_KMS", defaultValue: nil, help: "KMS endpoint override (for keyId:kms:<blob> entries of ENCRYPTION_KEYS)", secret: false),
        .init(name: "ENCRYPTED_SLOTS", defaultValue: "*", help: "slots encrypted when ENCRYPTION_KEYS is set: * or a comma list, a trailing * matches a prefix (iban,card*)", secret: false),
        .init(name: "WEBHOOK_API_KEY", defaultValue: nil, help: "if set, the webhook needs X-API-Key: K or Authorization: Bearer K", secret: true),
        .init(name: "ADMIN_TOKEN", defaultValue: nil, help: "if set, /sessions/** and /links need Authorization: Bearer T (unset: loopback clients only)", secret: true),
        .init(name: "IDENTITY_HASH_KEY", defaultValue: nil, help: "secret for the keyed hash (HMAC-SHA256) of identity links; unset: plain SHA-256 and a warning at start", secret: true),
        .init(name: "MAX_BODY_BYTES", defaultValue: "1048576", help: "larger request bodies get 413", secret: false),
        .init(name: "MAX_BUFFERED_BODY_BYTES", defaultValue: "67108864", help: "request body bytes buffered by all connections at once; past it 503 + Retry-After", secret: false),
        .init(name: "MAX_HEADER_BYTES", defaultValue: "32768", help: "largest request head (request line + headers) → 431", secret: false),
        .init(name: "MAX_REQUEST_LINE_BYTES", defaultValue: "8192", help: "longest request line → 431", secret: false),
        .init(name: "MAX_HEADER_COUNT", defaultValue: "100", help: "most header fields per request → 431", secret: false),
        .init(name: "MAX_CHUNK_LINE_BYTES", defaultValue: "1024", help: "longest chunk-size line in a chunked body → 400", secret: false),
        .init(name: "HEADER_TIMEOUT_MS", defaultValue: "10000", help: "time to receive a request head → 408", secret: false),
        .init(name: "BODY_TIMEOUT_MS", defaultValue: "30000", help: "time to receive a request body → 408", secret: false),
        .init(name: "IDLE_TIMEOUT_MS", defaultValue: "60000", help: "idle keep-alive connections are closed after this", secret: false),
        .init(name: "WRITE_TIMEOUT_MS", defaultValue: "10000", help: "a response not written in this time closes the connection", secret: false),
        .init(name: "MAX_CONNECTIONS", defaultValue: "1024", help: "open connections at once; more get 503", secret: false),
        .init(name: "IDLE_HANDOFF_MS", defaultValue: "20", help: "a keep-alive connection with no next request for this long moves from its thread to the idle loop (epoll)", secret: false),
        .init(name: "MAX_IDLE_WORKERS", defaultValue: "64", help: "worker threads kept waiting for requests; more exit when idle", secret: false),
        .init(name: "DRAIN_TIMEOUT_MS", defaultValue: "10000", help: "on SIGTERM/SIGINT, time for in-flight requests to finish", secret: false),
        .init(name: "MAX_JSON_DEPTH", defaultValue: "32", help: "deepest JSON nesting accepted in a body → 400", secret: false),
        .init(name: "MAX_ID_LENGTH", defaultValue: "512", help: "longest conversationId, channel, intent, userId, sessionId, eventId in characters (at most 512: DynamoDB keys are ≤ 2048 bytes) → 400", secret: false),
        .init(name: "MAX_SNAPSHOT_BYTES", defaultValue: "262144", help: "largest merged snapshot (DynamoDB items stop at 400 KB) → 413", secret: false),
        .init(name: "WRITE_MAX_ATTEMPTS", defaultValue: "10", help: "conditional-write attempts on version conflicts before 503", secret: false),
        .init(name: "SNAPSHOT_CACHE_ENTRIES", defaultValue: "10000", help: "conversations whose latest version (and known links) this process keeps in memory, so an event costs one store write; a stale entry is a version conflict, never a wrong write; 0: off", secret: false),
        .init(name: "LOG_LEVEL", defaultValue: "info", help: "debug, info, warn or error; JSON lines on stderr", secret: false),
        .init(name: "ACCESS_LOG", defaultValue: "true", help: "one info line per request (method, route pattern, status, duration, request id, bytes; never ids or slot values)", secret: false),
        .init(name: "WEBHOOK_FAST_PATH", defaultValue: "false", help: "the idle loop starts common-case webhook events and the SQLite commit thread answers them (no thread waits on one event; off while every request is logged)", secret: false),
    ]

    public var http = HTTPServerConfiguration()
    public var store: StoreKind = .sqlite
    public var sqlitePath = "./data/sessions.sqlite"
    public var sqliteBusyTimeoutMs = 5000
    public var sqliteReadConnections = 4
    public var sqliteCheckpointPages = 100
    public var sqliteSynchronous = "FULL"
    public var dynamoTable = "CognigySessions"
    public var dynamoLinksTable = "CognigySessionLinks"
    /// The key of the links' HMAC (UTF-8 bytes of IDENTITY_HASH_KEY); nil: plain SHA-256.
    public var identityHashKey: String?
    public var dynamoCreateTable = false
    public var dynamoRequestTimeoutMs = 2000
    public var dynamoDeadlineMs = 4000
    public var dynamoMaxAttempts = 6
    public var awsRegion = "us-east-1"
    public var dynamoEndpoint: String?
    public var awsAccessKeyId: String?
    public var awsSecretAccessKey: String?
    public var awsSessionToken: String?
    /// The AWS_* values the credential chain reads (see `AWSCredentials.CredentialChain`).
    public var awsEnvironment: [String: String] = [:]
    public var sessionTTLSeconds: Int64 = 604_800
    public var sweepIntervalSeconds = 60
    public var cognigyBaseURL: String?
    public var cognigyAPIKey: String?
    public var cognigyTokenURL: String?
    public var cognigyClientId: String?
    public var cognigyClientSecret: String?
    public var cognigyScope: String?
    public var cognigyContextKey: String?
    public var restoreInlineTimeoutMs = 3000
    /// `OUTBOX_STORE`: follows `store` unless set.
    public var outboxStore: StoreKind = .sqlite
    public var outboxPath = "./data/outbox.sqlite"
    public var dynamoOutboxTable = "CognigySessionOutbox"
    public var restoreTTLSeconds: Int64 = 3600
    public var accessLog = true
    /// `WEBHOOK_FAST_PATH` (README, "Concurrency model").
    public var webhookFastPath = false
    /// `ENCRYPTION_KEYS`, parsed (empty: encryption off).
    public var encryptionKeys: [KeyRingEntry] = []
    public var encryptedSlots = SlotPattern.all
    /// `AWS_ENDPOINT_URL_KMS`, else `AWS_ENDPOINT_URL`; nil: AWS's regional endpoint.
    public var kmsEndpoint: String?
    public var webhookAPIKey: String?
    public var adminToken: String?
    public var maxJSONDepth = 32
    public var maxIdLength = 512
    public var maxSnapshotBytes = 262_144
    public var writeMaxAttempts = 10
    public var snapshotCacheEntries = 10_000
    public var logLevel: LogLevel = .info
    /// The effective raw values, for `--check-config`.
    public private(set) var resolved: [String: String] = [:]

    public init() {
        http.port = 8080
    }

    /// Resolves the configuration. `configFile` is the `--config` argument (must exist);
    /// without it `CONFIG_FILE` (must exist) or `config/default.json` (optional) is read.
    public static func load(environment: [String: String], configFile: String? = nil) throws(ConfigError) -> ServiceConfiguration {
        var values: [String: String] = [:]
        for v in variables { if let d = v.defaultValue { values[v.name] = d } }

        let explicit = configFile ?? environment["CONFIG_FILE"]
        let path = explicit ?? "config/default.json"
        if explicit != nil || FileManager.default.fileExists(atPath: path) {
            for (k, v) in try readFile(path) { values[k] = v }
        }
        let known = Set(variables.map(\.name))
        for (k, v) in environment where known.contains(k) { values[k] = v }
        // A secret mounted from a file ends in a newline: CR/LF around a value are dropped.
        // Any other control character is a mistake that would end up in headers or logs.
        for (k, v) in values {
            var scalars = Substring(v).unicodeScalars
            while let f = scalars.first, f == "\r" || f == "\n" { scalars.removeFirst() }
            while let l = scalars.last, l == "\r" || l == "\n" { scalars.removeLast() }
            let trimmed = String(scalars)
            if trimmed.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
                throw ConfigError(variable: k, message: "contains a control character")
            }
            values[k] = trimmed
        }

        var c = ServiceConfiguration()
        c.resolved = values
        let p = Parser(values: values)
        c.http.host = try p.string("HOST", nonEmpty: true)
        c.http.port = try p.int("PORT", 0...65535)
        guard let store = StoreKind(rawValue: try p.string("SESSION_STORE").lowercased()) else {
            throw ConfigError(variable: "SESSION_STORE", message: "must be sqlite or dynamodb (got '\(values["SESSION_STORE"]!)')")
        }
        c.store = store
        c.sqlitePath = try p.string("SQLITE_PATH", nonEmpty: true)
        c.sqliteBusyTimeoutMs = try p.int("SQLITE_BUSY_TIMEOUT_MS", 0...600_000)
        c.sqliteReadConnections = try p.int("SQLITE_READ_CONNECTIONS", 1...256)
        c.sqliteCheckpointPages = try p.int("SQLITE_CHECKPOINT_PAGES", 10...1_000_000)
        let sync = try p.string("SQLITE_SYNCHRONOUS").uppercased()
        guard ["NORMAL", "FULL"].contains(sync) else {
            throw ConfigError(variable: "SQLITE_SYNCHRONOUS", message: "must be normal or full (got '\(values["SQLITE_SYNCHRONOUS"]!)')")
        }
        c.sqliteSynchronous = sync
        c.dynamoTable = try p.string("DYNAMODB_TABLE", nonEmpty: true)
        c.dynamoLinksTable = try p.string("DYNAMODB_LINKS_TABLE", nonEmpty: true)
        guard c.dynamoLinksTable != c.dynamoTable else {
            throw ConfigError(variable: "DYNAMODB_LINKS_TABLE", message: "must differ from DYNAMODB_TABLE")
        }
        c.dynamoCreateTable = try p.bool("DYNAMODB_CREATE_TABLE")
        c.dynamoRequestTimeoutMs = try p.int("DYNAMODB_REQUEST_TIMEOUT_MS", 50...60_000)
        c.dynamoDeadlineMs = try p.int("DYNAMODB_DEADLINE_MS", 50...120_000)
        c.dynamoMaxAttempts = try p.int("DYNAMODB_MAX_ATTEMPTS", 1...20)
        c.awsRegion = p.optional("AWS_REGION") ?? p.optional("AWS_DEFAULT_REGION") ?? "us-east-1"
        // SigV4 puts the region in the credential scope and the default endpoint's host name.
        let regionIsName = c.awsRegion.utf8.allSatisfy { $0 == UInt8(ascii: "-") || (48...57).contains($0) || (97...122).contains($0) }
        if c.store == .dynamodb, !regionIsName {
            throw ConfigError(
                variable: p.optional("AWS_REGION") != nil ? "AWS_REGION" : "AWS_DEFAULT_REGION",
                message: "must be an AWS region name such as eu-central-1 (lower-case letters, digits and '-'; got '\(c.awsRegion)')")
        }
        let serviceEndpoint = try p.url("AWS_ENDPOINT_URL_DYNAMODB")
        let globalEndpoint = try p.url("AWS_ENDPOINT_URL")
        c.dynamoEndpoint = serviceEndpoint ?? globalEndpoint
        c.awsAccessKeyId = p.optional("AWS_ACCESS_KEY_ID")
        c.awsSecretAccessKey = p.optional("AWS_SECRET_ACCESS_KEY")
        c.awsSessionToken = p.optional("AWS_SESSION_TOKEN")
        c.sessionTTLSeconds = Int64(try p.int("SESSION_TTL_SECONDS", 1...(100 * 365 * 86400)))
        c.sweepIntervalSeconds = try p.int("SWEEP_INTERVAL_SECONDS", 1...86400)
        c.cognigyBaseURL = try p.url("COGNIGY_API_BASE_URL")
        c.cognigyAPIKey = p.optional("COGNIGY_API_KEY")
        c.cognigyTokenURL = try p.url("COGNIGY_TOKEN_URL")
        c.cognigyClientId = p.optional("COGNIGY_CLIENT_ID")
        c.cognigyClientSecret = p.optional("COGNIGY_CLIENT_SECRET")
        c.cognigyScope = p.optional("COGNIGY_SCOPE")
        c.cognigyContextKey = p.optional("COGNIGY_CONTEXT_KEY")
        c.restoreInlineTimeoutMs = try p.int("RESTORE_INLINE_TIMEOUT_MS", 0...60_000)
        c.outboxPath = try p.string("OUTBOX_PATH", nonEmpty: true)
        c.dynamoOutboxTable = try p.string("DYNAMODB_OUTBOX_TABLE", nonEmpty: true)
        guard c.dynamoOutboxTable != c.dynamoTable, c.dynamoOutboxTable != c.dynamoLinksTable else {
            throw ConfigError(variable: "DYNAMODB_OUTBOX_TABLE", message: "must differ from DYNAMODB_TABLE and DYNAMODB_LINKS_TABLE")
        }
        if let outbox = p.optional("OUTBOX_STORE") {
            guard let kind = StoreKind(rawValue: outbox.lowercased()) else {
                throw ConfigError(variable: "OUTBOX_STORE", message: "must be sqlite or dynamodb (got '\(outbox)')")
            }
            c.outboxStore = kind
        } else {
            c.outboxStore = c.store
        }
        // The replica that delivers a queued restore reads the conversation from its own
        // session store: with a shared outbox over per-host SQLite stores, a replica on
        // another host would find nothing and drop the restore.
        if c.outboxStore == .dynamodb, c.store != .dynamodb {
            throw ConfigError(
                variable: "OUTBOX_STORE",
                message: "dynamodb needs SESSION_STORE=dynamodb (the replica that delivers a restore reads the conversation from its own store)")
        }
        c.restoreTTLSeconds = Int64(try p.int("RESTORE_TTL_SECONDS", 1...(100 * 365 * 86400)))
        c.accessLog = try p.bool("ACCESS_LOG")
        c.webhookFastPath = try p.bool("WEBHOOK_FAST_PATH")
        if let keys = p.optional("ENCRYPTION_KEYS") {
            do { c.encryptionKeys = try KeyRing.parse(keys) } catch {
                // The key ring's own messages already start with the variable's name.
                var message = Substring(error.description)
                if message.hasPrefix("ENCRYPTION_KEYS: ") { message = message.dropFirst("ENCRYPTION_KEYS: ".count) }
                throw ConfigError(variable: "ENCRYPTION_KEYS", message: String(message))
            }
        }
        c.kmsEndpoint = try p.url("AWS_ENDPOINT_URL_KMS") ?? globalEndpoint
        do { c.encryptedSlots = try SlotPattern(parsing: try p.string("ENCRYPTED_SLOTS")) } catch let error as SlotPatternError {
            throw ConfigError(variable: "ENCRYPTED_SLOTS", message: error.description)
        } catch {
            throw error as! ConfigError
        }
        c.webhookAPIKey = p.optional("WEBHOOK_API_KEY")
        c.adminToken = p.optional("ADMIN_TOKEN")
        c.identityHashKey = p.optional("IDENTITY_HASH_KEY")
        c.http.maxBodyBytes = try p.int("MAX_BODY_BYTES", 1...(64 << 20))
        c.http.maxBufferedBodyBytes = try p.int("MAX_BUFFERED_BODY_BYTES", 1...(16 << 30))
        c.http.maxHeaderBytes = try p.int("MAX_HEADER_BYTES", 256...(1 << 20))
        c.http.maxRequestLineBytes = try p.int("MAX_REQUEST_LINE_BYTES", 64...(1 << 20))
        c.http.maxHeaderCount = try p.int("MAX_HEADER_COUNT", 4...10_000)
        c.http.maxChunkLineBytes = try p.int("MAX_CHUNK_LINE_BYTES", 16...(1 << 20))
        c.http.headerTimeoutMs = try p.int("HEADER_TIMEOUT_MS", 10...3_600_000)
        c.http.bodyTimeoutMs = try p.int("BODY_TIMEOUT_MS", 10...3_600_000)
        c.http.idleTimeoutMs = try p.int("IDLE_TIMEOUT_MS", 10...3_600_000)
        c.http.writeTimeoutMs = try p.int("WRITE_TIMEOUT_MS", 10...3_600_000)
        c.http.maxConnections = try p.int("MAX_CONNECTIONS", 1...100_000)
        c.http.drainTimeoutMs = try p.int("DRAIN_TIMEOUT_MS", 0...3_600_000)
        c.http.idleHandoffDelayMs = try p.int("IDLE_HANDOFF_MS", 0...60_000)
        c.http.maxIdleWorkers = try p.int("MAX_IDLE_WORKERS", 0...100_000)
        c.maxJSONDepth = try p.int("MAX_JSON_DEPTH", 2...512)
        c.maxIdLength = try p.int("MAX_ID_LENGTH", 16...512)
        c.maxSnapshotBytes = try p.int("MAX_SNAPSHOT_BYTES", 1024...(400 * 1024))
        c.writeMaxAttempts = try p.int("WRITE_MAX_ATTEMPTS", 1...100)
        c.snapshotCacheEntries = try p.int("SNAPSHOT_CACHE_ENTRIES", 0...10_000_000)
        switch try p.string("LOG_LEVEL").lowercased() {
        case "debug": c.logLevel = .debug
        case "info": c.logLevel = .info
        case "warn", "warning": c.logLevel = .warn
        case "error": c.logLevel = .error
        default: throw ConfigError(variable: "LOG_LEVEL", message: "must be debug, info, warn or error (got '\(values["LOG_LEVEL"]!)')")
        }
        if c.http.maxRequestLineBytes > c.http.maxHeaderBytes {
            throw ConfigError(variable: "MAX_REQUEST_LINE_BYTES", message: "must not exceed MAX_HEADER_BYTES (\(c.http.maxHeaderBytes))")
        }
        if (c.cognigyClientId != nil) != (c.cognigyClientSecret != nil) || (c.cognigyClientId != nil && c.cognigyTokenURL == nil) {
            throw ConfigError(
                variable: "COGNIGY_CLIENT_ID",
                message: "OAuth2 needs COGNIGY_TOKEN_URL, COGNIGY_CLIENT_ID and COGNIGY_CLIENT_SECRET together")
        }
        if c.cognigyBaseURL != nil, c.cognigyAPIKey == nil, c.cognigyClientId == nil {
            throw ConfigError(
                variable: "COGNIGY_API_BASE_URL",
                message: "restores need credentials: set COGNIGY_API_KEY, or COGNIGY_TOKEN_URL, COGNIGY_CLIENT_ID and COGNIGY_CLIENT_SECRET")
        }
        if (c.awsAccessKeyId != nil) != (c.awsSecretAccessKey != nil) {
            throw ConfigError(variable: "AWS_ACCESS_KEY_ID", message: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together")
        }
        // Without static keys the AWS chain finds credentials at run time; what can be
        // checked now (pairs that go together, URLs) stops start-up with one line.
        for v in variables where v.name.hasPrefix("AWS_") {
            if let value = p.optional(v.name) { c.awsEnvironment[v.name] = value }
        }
        if (c.awsEnvironment["AWS_WEB_IDENTITY_TOKEN_FILE"] != nil) != (c.awsEnvironment["AWS_ROLE_ARN"] != nil) {
            throw ConfigError(variable: "AWS_WEB_IDENTITY_TOKEN_FILE", message: "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN go together")
        }
        _ = try p.url("AWS_ENDPOINT_URL_STS")
        _ = try p.url("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        _ = try p.bool("AWS_EC2_METADATA_DISABLED")
        do { _ = try ContainerCredentialProvider.resolveURL(c.awsEnvironment) } catch .notConfigured {} catch {
            let variable = c.awsEnvironment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] != nil
                ? "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" : "AWS_CONTAINER_CREDENTIALS_FULL_URI"
            throw ConfigError(variable: variable, message: error.description)
        }
        return c
    }

    /// The config file: a JSON object whose keys are variable names; values are strings,
    /// numbers or booleans. An unknown key is an error (it is almost always a typo).
    static func readFile(_ path: String) throws(ConfigError) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(variable: "CONFIG_FILE", message: "cannot read \(path)")
        }
        let json: JSONValue
        do { json = try JSONParser.parse(Array(data)) } catch {
            throw ConfigError(variable: "CONFIG_FILE", message: "\(path) is not valid JSON: \(error)")
        }
        guard case .object(let members) = json else {
            throw ConfigError(variable: "CONFIG_FILE", message: "\(path) must hold a JSON object")
        }
        let known = Set(variables.map(\.name))
        var out: [String: String] = [:]
        for m in members {
            guard known.contains(m.key) else {
                throw ConfigError(variable: m.key, message: "unknown key in \(path)")
            }
            switch m.value {
            case .string(let s): out[m.key] = s
            case .number(let n): out[m.key] = n
            case .bool(let b): out[m.key] = b ? "true" : "false"
            case .null: out.removeValue(forKey: m.key)
            default: throw ConfigError(variable: m.key, message: "must be a string, number or boolean in \(path)")
            }
        }
        return out
    }

    /// The effective configuration, one `NAME=value` a line, secrets masked.
    public func describe() -> String {
        Self.variables.map { v in
            let value = resolved[v.name].map { v.secret && !$0.isEmpty ? "****" : Self.maskUserinfo($0) } ?? "(unset)"
            return "\(v.name)=\(value)"
        }.joined(separator: "\n")
    }

    /// `scheme://user:password@host/…` with the userinfo replaced by `****`: a URL may carry
    /// credentials, and `--check-config` output and error lines end up in logs.
    public static func maskUserinfo(_ value: String) -> String {
        guard let schemeEnd = value.range(of: "://") else { return value }
        let rest = value[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return value }
        return String(value[..<schemeEnd.upperBound]) + "****" + String(rest[at...])
    }

    private struct Parser {
        let values: [String: String]

        func optional(_ name: String) -> String? {
            guard let v = values[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }

        func string(_ name: String, nonEmpty: Bool = false) throws(ConfigError) -> String {
            let v = values[name] ?? ""
            if nonEmpty, v.trimmingCharacters(in: .whitespaces).isEmpty {
                throw ConfigError(variable: name, message: "must not be empty")
            }
            return v
        }

        func int(_ name: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
            let raw = (values[name] ?? "").trimmingCharacters(in: .whitespaces)
            guard let v = Int(raw), range.contains(v) else {
                throw ConfigError(
                    variable: name, message: "must be an integer from \(range.lowerBound) to \(range.upperBound) (got '\(raw)')")
            }
            return v
        }

        func bool(_ name: String) throws(ConfigError) -> Bool {
            switch (values[name] ?? "").trimmingCharacters(in: .whitespaces).lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no", "": return false
            case let other: throw ConfigError(variable: name, message: "must be true or false (got '\(other)')")
            }
        }

        /// An http(s) URL with a host; a trailing slash is dropped.
        func url(_ name: String) throws(ConfigError) -> String? {
            guard let v = optional(name) else { return nil }
            guard let u = URL(string: v), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https",
                let host = u.host, !host.isEmpty
            else {
                throw ConfigError(variable: name, message: "must be an http:// or https:// URL (got '\(ServiceConfiguration.maskUserinfo(v))')")
            }
            return baseURL(v)
        }
    }
}
