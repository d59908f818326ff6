#if canImport(Glibc)
import Glibc
#endif
import AWSCredentials
import Cognigy
import KMS
import Crypto
import HTTPClient
import HTTPServer
import Identity
import Primitives
import SessionStore
import Synchronization

/// Wires configuration → store → service → routes → server, plus the TTL sweeper.
public final class ServiceApp: Sendable {
    public let configuration: ServiceConfiguration
    public let server: HTTPServer
    public let service: DialogService
    public let logger: Logger
    private let sweeperStop = Atomic<Bool>(false)
    public let metrics = Metrics()
    /// The DynamoDB store's credentials (nil for SQLite), for metrics and tests.
    public let awsCredentials: RotatingCredentialProvider?

    public init(configuration: ServiceConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        var store: any SessionStore
        let links: any LinkStore
        switch configuration.store {
        case .sqlite:
            awsCredentials = nil
            let sqlite = SQLiteStore.Configuration(
                path: configuration.sqlitePath, busyTimeoutMs: configuration.sqliteBusyTimeoutMs,
                synchronous: configuration.sqliteSynchronous, readConnections: configuration.sqliteReadConnections,
                checkpointPages: configuration.sqliteCheckpointPages)
            store = try SQLiteStore(configuration: sqlite)
            links = try SQLiteLinkStore(configuration: sqlite)
        case .dynamodb:
            var client = DynamoDBClient.Configuration(
                endpoint: configuration.dynamoEndpoint ?? DynamoDBClient.Configuration.awsEndpoint(region: configuration.awsRegion),
                region: configuration.awsRegion)
            client.requestTimeoutMs = configuration.dynamoRequestTimeoutMs
            client.deadlineMs = configuration.dynamoDeadlineMs
            client.maxAttempts = configuration.dynamoMaxAttempts
            let http = CurlHTTPClient()
            let credentials = RotatingCredentialProvider(CredentialChain.standard(environment: configuration.awsEnvironment, http: http))
            awsCredentials = credentials
            let shared = DynamoDBClient(configuration: client, credentials: credentials, http: http)
            let dynamo = DynamoDBStore(client: shared, table: configuration.dynamoTable)
            let dynamoLinks = DynamoDBLinkStore(client: shared, table: configuration.dynamoLinksTable)
            links = dynamoLinks
            if configuration.dynamoCreateTable {
                try Self.untilReachable(logger) { () throws(StoreError) in
                    try dynamo.createTableIfMissing()
                    try dynamoLinks.createTableIfMissing()
                }
                logger.info(
                    "dynamodb tables ready",
                    [("table", .string(configuration.dynamoTable)), ("links_table", .string(configuration.dynamoLinksTable))])
            }
            store = dynamo
        }
        let dynamoClient = (store as? DynamoDBStore)?.client
        var protector: CipherProtector?
        if !configuration.encryptionKeys.isEmpty {
            let keys = try Self.unwrapKMSKeys(configuration, credentials: awsCredentials)
            let cipher = try CipherProtector(keys: keys, slots: configuration.encryptedSlots)
            protector = cipher
            // SPEC "PII encryption at rest": below the instrumentation, so store timings include it.
            store = EncryptingStore(store, protector: cipher)
            logger.info("PII encryption at rest on", [("encrypting_key_id", .string(configuration.encryptionKeys[0].id))])
        }
        store = InstrumentedStore(store, kind: configuration.store.rawValue, metrics: metrics)
        var limits = DialogService.Limits()
        limits.maxIdLength = configuration.maxIdLength
        limits.maxSnapshotBytes = configuration.maxSnapshotBytes
        limits.writeMaxAttempts = configuration.writeMaxAttempts
        limits.snapshotCacheEntries = configuration.snapshotCacheEntries
        limits.sessionTTLSeconds = configuration.sessionTTLSeconds
        var restorer: Restorer?
        if let base = configuration.cognigyBaseURL {
            var oauth: TokenCache.Configuration?
            if let tokenURL = configuration.cognigyTokenURL, let id = configuration.cognigyClientId,
                let secret = configuration.cognigyClientSecret
            {
                oauth = TokenCache.Configuration(tokenURL: tokenURL, clientId: id, clientSecret: secret, scope: configuration.cognigyScope)
            }
            let client = CognigyClient(configuration: .init(baseURL: base, apiKey: configuration.cognigyAPIKey, oauth: oauth))
            let queue: any RestoreQueue
            if configuration.outboxStore == .dynamodb, let dynamoClient {
                let outbox = DynamoDBRestoreOutbox(client: dynamoClient, table: configuration.dynamoOutboxTable, protector: protector)
                if configuration.dynamoCreateTable {
                    try Self.untilReachable(logger) { () throws(StoreError) in try outbox.createTableIfMissing() }
                    logger.info("dynamodb outbox table ready", [("table", .string(configuration.dynamoOutboxTable))])
                }
                queue = outbox
            } else {
                if configuration.store == .dynamodb {
                    logger.warn(
                        "OUTBOX_STORE=sqlite with SESSION_STORE=dynamodb: restores queued here are delivered by this host only",
                        [("outbox_path", .string(configuration.outboxPath))])
                }
                queue = try RestoreOutbox(
                    path: configuration.outboxPath, busyTimeoutMs: configuration.sqliteBusyTimeoutMs,
                    synchronous: configuration.sqliteSynchronous, protector: protector)
            }
            restorer = Restorer(
                client: client, queue: queue, store: store, contextKey: configuration.cognigyContextKey,
                inlineTimeoutMs: configuration.restoreInlineTimeoutMs, ttlSeconds: configuration.restoreTTLSeconds, logger: logger)
        }
        var linkLimits = LinkResolver.Limits()
        linkLimits.sessionTTLSeconds = configuration.sessionTTLSeconds
        linkLimits.knownLinkEntries = configuration.snapshotCacheEntries
        let linker = LinkResolver(
            links: InstrumentedLinkStore(links, kind: configuration.store.rawValue, metrics: metrics), store: store, hasher: LinkHasher(key: configuration.identityHashKey.map { Array($0.utf8) }),
            limits: linkLimits, logger: logger, latestCache: LRUCache(capacity: configuration.snapshotCacheEntries))
        service = DialogService(store: store, linker: linker, limits: limits, logger: logger, restorer: restorer)
        let serverBox = Locked<HTTPServer?>(nil)
        let service = self.service
        let metrics = self.metrics
        let credentials = awsCredentials
        let routes = Routes(
            service: service, config: configuration, logger: logger,
            metricsText: {
                Self.scrape(
                    metrics: metrics, service: service, server: serverBox.withLock { $0 }, dynamo: dynamoClient,
                    credentials: credentials)
            },
            isDraining: { serverBox.withLock { $0?.isStopping ?? false } })
        server = try HTTPServer(
            configuration: configuration.http,
            handler: InstrumentedHandler(router: routes.router(), metrics: metrics, logger: logger, accessLog: configuration.accessLog),
            onAcceptError: { code in
                logger.warn("accept failed; backing off", [("errno", .int(Int64(code))), ("error", .string(String(cString: strerror(code))))])
            })
        serverBox.withLock { $0 = server }
    }

    /// Runs a DynamoDB set-up step (creating a table) until the endpoint answers. Beside
    /// DynamoDB Local (docker-compose) the endpoint may start after us, and an instance role
    /// or container agent may answer a moment after start: keep trying for a while rather
    /// than exiting on the first refusal.
    static func untilReachable(_ logger: Logger, _ step: () throws(StoreError) -> Void) throws(StoreError) {
        var attempt = 0
        while true {
            do {
                try step()
                return
            } catch {
                let why: String
                switch error {
                case .unavailable(let w), .authFailed(let w): why = w
                default: throw error
                }
                guard attempt < 30 else { throw error }
                attempt += 1
                logger.warn("dynamodb not reachable yet; retrying", [("error", .string(why)), ("attempt", .int(Int64(attempt)))])
                usleep(1_000_000)
            }
        }
    }

    /// Counters kept elsewhere, read at scrape time.
    static func scrape(
        metrics: Metrics, service: DialogService, server: HTTPServer?, dynamo: DynamoDBClient?, credentials: RotatingCredentialProvider? = nil
    ) -> String {
        var samples: [Metrics.Sample] = []
        if let server {
            samples.append(.init("cognigy_session_open_connections", "gauge", "Client connections open now.", [], Double(server.activeConnections)))
            samples.append(.init(
                "cognigy_session_rejected_connections_total", "counter", "Connections refused because MAX_CONNECTIONS were open.", [],
                Double(server.rejectedConnectionCount)))
            samples.append(.init(
                "cognigy_session_accept_errors_total", "counter", "accept(2) failures (logged, backed off; the server keeps accepting).", [],
                Double(server.acceptErrorCount)))
            samples.append(.init(
                "cognigy_session_protocol_errors_total", "counter", "Requests answered with a framing error (400/408/413/431/...).", [],
                Double(server.protocolErrorCount)))
            samples.append(.init(
                "cognigy_session_http_answered_later_total", "counter",
                "Requests the idle loop started and the store's commit thread answered (webhook events on the fast path).", [],
                Double(server.laterAnswerCount)))
        }
        if let restorer = service.restorer {
            let c = restorer.counts
            samples.append(.init(
                "cognigy_session_restore_auth_failures_total", "counter",
                "Restores Cognigy refused with 401/403 (kept queued): alert on it, usually a key rotation in progress.", [],
                Double(c.unauthorized)))
            for (outcome, value) in [("sent", c.sent), ("queued", c.queued), ("failed", c.failed), ("dropped", c.dropped), ("delivered_later", c.deliveredLater)] {
                samples.append(.init(
                    "cognigy_session_restores_total", "counter",
                    "Restores into Cognigy by outcome: sent inline, queued, failed (refused), dropped (expired), delivered_later (from the outbox).",
                    [("outcome", outcome)], Double(value)))
            }
            if let stats = try? restorer.queue.stats(nowMs: DialogService.wallClockMs()) {
                samples.append(.init("cognigy_session_outbox_depth", "gauge", "Restores waiting in the outbox.", [], Double(stats.depth)))
                samples.append(.init(
                    "cognigy_session_outbox_oldest_age_seconds", "gauge", "Age of the oldest restore waiting in the outbox.", [],
                    Double(stats.oldestAgeMs) / 1000))
            }
            samples.append(.init(
                "cognigy_session_token_refreshes_total", "counter", "OAuth2 token requests made to COGNIGY_TOKEN_URL.", [],
                Double(restorer.client.tokens?.refreshes ?? 0)))
        }
        if let credentials {
            samples.append(.init(
                "cognigy_session_aws_credential_refreshes_total", "counter",
                "Fetches of AWS credentials from their source (environment, web identity, container, instance metadata).", [],
                Double(credentials.refreshes)))
            samples.append(.init(
                "cognigy_session_aws_credential_failures_total", "counter",
                "Fetches of AWS credentials that failed: alert on it, requests fail once the cached credentials expire.", [],
                Double(credentials.failures)))
        }
        if let dynamo {
            for (op, n) in dynamo.requestCounts.sorted(by: { $0.key < $1.key }) {
                samples.append(.init(
                    "cognigy_session_dynamodb_requests_total", "counter", "HTTP requests sent to DynamoDB (retries included), by operation.",
                    [("operation", op)], Double(n)))
            }
            for (op, n) in dynamo.retryCounts.sorted(by: { $0.key < $1.key }) {
                samples.append(.init(
                    "cognigy_session_store_retries_total", "counter",
                    "Store requests re-sent after throttling, a 5xx or a transport failure, by store and operation.",
                    [("store", "dynamodb"), ("operation", op)], Double(n)))
            }
        }
        return metrics.render(samples)
    }

    public func start() throws {
        if configuration.webhookAPIKey == nil, !Self.isLoopbackHost(configuration.http.host) {
            logger.warn(
                "the webhook is reachable from non-loopback addresses without WEBHOOK_API_KEY: anyone who can reach the port can write sessions",
                [("host", .string(configuration.http.host))])
        }
        if configuration.adminToken == nil {
            logger.info("ADMIN_TOKEN is not set: /sessions/** and /links answer loopback clients only")
        }
        if configuration.identityHashKey == nil {
            logger.warn(
                "IDENTITY_HASH_KEY is not set: identity links are stored as plain SHA-256 hashes, which anyone with the store can test phone numbers and e-mail addresses against")
        } else if let key = configuration.identityHashKey, key.utf8.count < 16 {
            logger.warn("IDENTITY_HASH_KEY is shorter than 16 bytes; use a long random secret (e.g. openssl rand -base64 32)")
        }
        if configuration.webhookFastPath, !server.answersLater {
            logger.warn(
                "WEBHOOK_FAST_PATH is on but has no effect: it needs the SQLite store, SNAPSHOT_CACHE_ENTRIES > 0, and no log line per request (ACCESS_LOG=false or LOG_LEVEL=warn or error)")
        }
        try server.start()
        startSweeper()
        service.restorer?.start()
        logger.info(
            "listening",
            [("host", .string(configuration.http.host)), ("port", .int(Int64(server.port))),
             ("store", .string(configuration.store.rawValue))])
    }

    /// `keyId:kms:<CiphertextBlob>` entries of ENCRYPTION_KEYS become ready keys: each blob is
    /// unwrapped once, now, through KMS `Decrypt` (SigV4 with the AWS credential chain).
    /// Failure stops start-up with one line naming ENCRYPTION_KEYS and the key id.
    static func unwrapKMSKeys(
        _ configuration: ServiceConfiguration, credentials: RotatingCredentialProvider?
    ) throws(ConfigError) -> [KeyRingEntry] {
        var kms: KMSClient?
        var out: [KeyRingEntry] = []
        for entry in configuration.encryptionKeys {
            guard case .kmsKey(let id, let blob) = entry else {
                out.append(entry)
                continue
            }
            if kms == nil {
                let http = CurlHTTPClient()
                kms = KMSClient(
                    endpoint: configuration.kmsEndpoint ?? KMSClient.awsEndpoint(region: configuration.awsRegion),
                    region: configuration.awsRegion,
                    credentials: credentials
                        ?? RotatingCredentialProvider(CredentialChain.standard(environment: configuration.awsEnvironment, http: http)),
                    http: http)
            }
            do {
                let plain = try kms!.decrypt(ciphertextBlob: blob)
                out.append(.key(id: id, key: try SymmetricKey(bytes: plain)))
            } catch {
                throw ConfigError(variable: "ENCRYPTION_KEYS", message: "cannot unwrap kms key '\(id)': \(error)")
            }
        }
        return out
    }

    /// Whether a listen address accepts loopback connections only.
    static func isLoopbackHost(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Drains the server; returns whether every connection finished in time.
    public func stop() -> Bool {
        sweeperStop.store(true, ordering: .relaxed)
        let drained = server.shutdown()
        service.restorer?.stop()
        return drained
    }

    /// Deletes expired SQLite rows every SWEEP_INTERVAL_SECONDS (DynamoDB does this itself
    /// through the table's TTL on ExpiresAt).
    private func startSweeper() {
        let store = service.store
        let links = service.linker.links
        let interval = configuration.sweepIntervalSeconds
        let logger = self.logger
        spawnThread(name: "expiry-sweeper") { [self] in
            var slept = 0
            while !sweeperStop.load(ordering: .relaxed) {
                usleep(200_000)
                slept += 200
                guard slept >= interval * 1000 else { continue }
                slept = 0
                do {
                    let deleted = try store.sweepExpired(now: DialogService.wallClockMs() / 1000)
                    if deleted > 0 { logger.info("expired versions swept", [("deleted", .int(Int64(deleted)))]) }
                    let unlinked = try links.sweepExpiredLinks(now: DialogService.wallClockMs() / 1000)
                    if unlinked > 0 { logger.info("expired links swept", [("deleted", .int(Int64(unlinked)))]) }
                } catch {
                    logger.warn("sweep failed", [("error", .string("\(error)"))])
                }
            }
        }
    }
}
