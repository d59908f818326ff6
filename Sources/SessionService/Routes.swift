import DialogWire
import Foundation
import HTTPServer
import Identity
import SessionStore

/// The HTTP API of SPEC: routes → decoder → service. Every error a caller can cause is a
/// JSON error with a status; nothing here traps.
public struct Routes: Sendable {
    let service: DialogService
    let config: ServiceConfiguration
    let logger: Logger
    /// Largest `limit` the versions listing accepts.
    public static let maxVersionsPage = 100
    public static let defaultVersionsPage = 20

    /// The `/metrics` body, assembled by the app (it knows the server and the restorer).
    let metricsText: @Sendable () -> String
    /// True once SIGTERM started the drain: `/ready` answers 503 from then on.
    let isDraining: @Sendable () -> Bool

    public init(
        service: DialogService, config: ServiceConfiguration, logger: Logger, metricsText: @escaping @Sendable () -> String = { "" },
        isDraining: @escaping @Sendable () -> Bool = { false }
    ) {
        self.service = service
        self.config = config
        self.logger = logger
        self.metricsText = metricsText
        self.isDraining = isDraining
    }

    public func router() -> Router {
        var r = Router()
        r.add(.GET, "/health", inline: true) { _, _ in .json(.ok, Array(#"{"status":"ok"}"#.utf8)) }
        r.add(.GET, "/ready") { _, _ in ready() }
        r.add(.GET, "/metrics") { _, _ in
            HTTPResponse(
                status: .ok, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: Array(metricsText().utf8))
        }
        let webhookAuth: Router.Guard = { headers, _ in webhookCredentials(headers) }
        let adminAuth: Router.Guard = { headers, loopback in adminCredentials(headers, peerIsLoopback: loopback) }
        var fastPath: Router.LaterHandler?
        if config.webhookFastPath, service.ingestsLater {
            fastPath = { (req: HTTPRequest, _: [String: String], done: @escaping @Sendable (LaterAnswer) -> Void) -> Bool in
                webhookLater(req, done: done)
            }
        }
        r.add(.POST, "/webhook/dialog", guard: webhookAuth, later: fastPath) { req, _ in webhook(req) }
        r.add(.GET, "/sessions/:id", guard: adminAuth) { req, p in admin(req, p) { latest($0) } }
        r.add(.DELETE, "/sessions/:id", guard: adminAuth) { req, p in admin(req, p) { delete($0) } }
        r.add(.GET, "/sessions/:id/versions", guard: adminAuth) { req, p in admin(req, p) { versions($0, req) } }
        r.add(.GET, "/sessions/:id/versions/:n", guard: adminAuth) { req, p in admin(req, p) { version($0, p["n"]!) } }
        r.add(.POST, "/sessions/:id/rollback", guard: adminAuth) { req, p in admin(req, p) { rollback($0, req) } }
        r.add(.POST, "/sessions/:id/restore", guard: adminAuth) { req, p in admin(req, p) { restore($0, req) } }
        r.add(.GET, "/links", guard: adminAuth) { req, _ in link(req) }
        return r
    }

    // MARK: credentials (checked from the head alone, before any body is read)

    /// SPEC: `X-API-Key: K`, `Authorization: Bearer K`, `Authorization: ApiKey K` or
    /// `Authorization: Basic base64(any-user:K)`, the forms Cognigy's HTTP Request node sends.
    func webhookCredentials(_ headers: HTTPHeaders) -> HTTPResponse? {
        guard let key = config.webhookAPIKey else { return nil }
        let given = headers["x-api-key"] ?? authorization(headers, scheme: "bearer") ?? authorization(headers, scheme: "apikey")
            ?? basicPassword(headers)
        guard let given, constantTimeEquals(given, key) else {
            return .error(
                .unauthorized, code: "unauthorized",
                message: "A valid X-API-Key, or Authorization Bearer, ApiKey or Basic credentials, are required.",
                headers: [("WWW-Authenticate", "Bearer")])
        }
        return nil
    }

    /// SPEC: with `ADMIN_TOKEN`, a Bearer token; without it, loopback clients only (like
    /// Redis's protected mode), so a laptop works and an exposed container is never open.
    func adminCredentials(_ headers: HTTPHeaders, peerIsLoopback: Bool) -> HTTPResponse? {
        guard let token = config.adminToken else {
            if peerIsLoopback { return nil }
            return .error(
                .forbidden, code: "admin_token_required",
                message: "Set ADMIN_TOKEN to use the admin routes from another host; without it they answer loopback clients only.")
        }
        guard let given = authorization(headers, scheme: "bearer"), constantTimeEquals(given, token) else {
            return .error(
                .unauthorized, code: "unauthorized", message: "A valid admin Bearer token is required.",
                headers: [("WWW-Authenticate", "Bearer")])
        }
        return nil
    }

    /// 500, not 503: the caller retrying in a second will not help, someone must look
    /// (SPEC: authentication failures are not "store unavailable").
    static var storeAuthFailed: HTTPResponse {
        .error(
            .internalServerError, code: "store_auth_failed",
            message: "The session store does not accept the service's AWS credentials; see the service log.")
    }

    // MARK: health

    func ready() -> HTTPResponse {
        if isDraining() {
            return .error(.serviceUnavailable, code: "shutting_down", message: "The service is shutting down.")
        }
        do {
            try service.store.checkReady()
            return .json(.ok, Array(#"{"status":"ready","store":"\#(config.store.rawValue)"}"#.utf8))
        } catch .authFailed(let why) {
            logger.error("not ready: store authentication failed", [("error", .string(why))])
            return .error(
                .serviceUnavailable, code: "store_auth_failed", message: "The session store does not accept the service's AWS credentials.")
        } catch {
            logger.warn("not ready", [("error", .string(error.description))])
            return .error(.serviceUnavailable, code: "store_unavailable", message: "The session store does not answer.")
        }
    }

    // MARK: sessions API

    /// Checks the admin token, then the conversation id of the path: an id longer than the
    /// webhook accepts can never be stored, and must not reach the store (DynamoDB rejects
    /// keys over 2,048 bytes as a validation error).
    private func admin(_ req: HTTPRequest, _ params: [String: String], _ body: (String) -> HTTPResponse) -> HTTPResponse {
        let id = params["id"]!
        if service.limits.tooLongId([("conversationId", id)]) != nil {
            return .error(
                .badRequest, code: "invalid_path",
                message: "The conversation id is longer than \(service.limits.maxIdLength) characters.")
        }
        if DialogService.Limits.hasControlCharacter(id) {
            return .error(.badRequest, code: "invalid_path", message: "The conversation id contains a control character.")
        }
        return body(id)
    }

    private func snapshotResponse(_ stored: StoredVersion) -> HTTPResponse {
        switch stored.snapshot {
        case .success(let snapshot):
            var w = JSONWriter(capacity: 512)
            snapshot.writeJSON(to: &w)
            return .json(.ok, w.bytes)
        case .failure:
            return corrupt(stored)
        }
    }

    private func corrupt(_ stored: StoredVersion) -> HTTPResponse {
        logger.error(
            "corrupt stored snapshot",
            [("conversation_id", .string(stored.conversationId)), ("version", .int(stored.version))])
        return .error(
            .internalServerError, code: "corrupt_snapshot", message: "Version \(stored.version) is stored but cannot be decoded.")
    }

    private func storeError(_ error: StoreError) -> HTTPResponse {
        switch error {
        case .invalidRequest, .tooLarge, .authFailed, .keyUnavailable: return ingestError(DialogService.map(error))
        case .unavailable, .versionConflict: break
        }
        logger.warn("store unavailable", [("error", .string(error.description))])
        return .error(
            .serviceUnavailable, code: "store_unavailable", message: "The session store does not answer; retry.",
            headers: [("Retry-After", "1")])
    }

    private func notFound(_ id: String) -> HTTPResponse {
        .error(.notFound, code: "session_not_found", message: "No snapshot is stored for this conversation.")
    }

    func latest(_ id: String) -> HTTPResponse {
        do {
            guard let stored = try service.latest(id) else { return notFound(id) }
            return snapshotResponse(stored)
        } catch { return storeError(error) }
    }

    func version(_ id: String, _ n: String) -> HTTPResponse {
        guard let v = Int64(n), v >= 1 else {
            return .error(.badRequest, code: "invalid_version", message: "The version must be a positive integer.")
        }
        do {
            guard let stored = try service.version(id, v) else {
                return .error(.notFound, code: "version_not_found", message: "Version \(v) is not stored for this conversation.")
            }
            return snapshotResponse(stored)
        } catch { return storeError(error) }
    }

    func versions(_ id: String, _ req: HTTPRequest) -> HTTPResponse {
        guard let items = req.queryItems else {
            return .error(.badRequest, code: "invalid_query", message: "The query string has an invalid percent-escape.")
        }
        var limit = Self.defaultVersionsPage
        var before: Int64?
        for (name, value) in items {
            switch name {
            case "limit":
                guard let l = Int(value), (1...Self.maxVersionsPage).contains(l) else {
                    return .error(
                        .badRequest, code: "invalid_query", message: "limit must be an integer from 1 to \(Self.maxVersionsPage).")
                }
                limit = l
            case "before":
                guard let b = Int64(value), b >= 1 else {
                    return .error(.badRequest, code: "invalid_query", message: "before must be a positive integer.")
                }
                before = b
            default:
                continue
            }
        }
        do {
            let found = try service.versions(id, limit: limit, before: before)
            // An empty page is a 404 when nothing at all is stored (never written, or
            // deleted); past the end of a stored conversation it is an empty page.
            if found.isEmpty {
                if before == nil { return notFound(id) }
                if try service.latest(id) == nil { return notFound(id) }
            }
            var w = JSONWriter(capacity: 1024)
            w.beginObject()
            w.key("conversationId"); w.value(id)
            w.key("versions")
            w.beginArray()
            for stored in found {
                guard case .success(let snapshot) = stored.snapshot else { return corrupt(stored) }
                snapshot.writeJSON(to: &w)
            }
            w.endArray()
            // The cursor for the next (older) page, null when this page reached version 1.
            w.key("nextBefore")
            if found.count == limit, let last = found.last, last.version > 1 { w.value(last.version) } else { w.null() }
            w.endObject()
            return .json(.ok, w.bytes)
        } catch { return storeError(error) }
    }

    func delete(_ id: String) -> HTTPResponse {
        do {
            let count = try service.erase(id)
            logger.info("conversation deleted", [("conversation_id", .string(id)), ("versions", .int(Int64(count)))])
            return HTTPResponse(status: .noContent)
        } catch { return storeError(error) }
    }

    /// SPEC `GET /links?kind=K&value=V` or `?channel=C&userId=U`: the conversation a live
    /// link points at, for data-subject requests (find a person's conversation, then DELETE it).
    func link(_ req: HTTPRequest) -> HTTPResponse {
        func invalid(_ message: String) -> HTTPResponse { .error(.badRequest, code: "invalid_query", message: message) }
        guard let items = req.queryItems else { return invalid("The query string has an invalid percent-escape.") }
        var query: [String: String] = [:]
        for (name, value) in items where ["kind", "value", "channel", "userId"].contains(name) {
            guard query.updateValue(value, forKey: name) == nil else { return invalid("Parameter '\(name)' is given more than once.") }
        }
        let subject: LinkSubject
        switch (query["kind"], query["value"], query["channel"], query["userId"]) {
        case (let kind?, let value?, nil, nil):
            do {
                guard let normalized = try IdentityRules.normalize(kind: kind, value: value, maxLength: service.limits.maxIdLength)
                else { return invalid("Parameter 'value' is empty.") }
                subject = .identity(kind: kind, value: normalized)
            } catch { return invalid(error.description) }
        case (nil, nil, let channel?, let userId?):
            let ids = [("channel", channel), ("userId", userId)]
            if let bad = service.limits.tooLongId(ids) ?? DialogService.Limits.controlCharacterId(ids) { return invalid(bad) }
            guard !channel.isEmpty, !userId.isEmpty else { return invalid("Parameters 'channel' and 'userId' must not be empty.") }
            subject = .user(channel: channel, userId: userId)
        default:
            return invalid("Give either kind and value, or channel and userId.")
        }
        do {
            guard let conversationId = try service.linkedConversation(subject) else {
                return .error(.notFound, code: "link_not_found", message: "No live conversation is linked to this identity.")
            }
            var w = JSONWriter(capacity: 64)
            w.beginObject()
            w.key("conversationId"); w.value(conversationId)
            w.endObject()
            return .json(.ok, w.bytes)
        } catch { return storeError(error) }
    }

    /// Pushes the latest context into the named Cognigy session now.
    func restore(_ id: String, _ req: HTTPRequest) -> HTTPResponse {
        guard let restorer = service.restorer else {
            return .error(
                .conflict, code: "restore_not_configured", message: "Set COGNIGY_API_BASE_URL to restore into Cognigy.")
        }
        guard mediaType(req.headers["content-type"]) == "application/json" else {
            return .error(
                .unsupportedMediaType, code: "unsupported_media_type",
                message: "Send {\"channel\",\"userId\",\"sessionId\"} as application/json.")
        }
        let json: JSONValue
        do { json = try JSONParser.parse(req.body, maxDepth: config.maxJSONDepth) } catch {
            return .error(.badRequest, code: "invalid_body", message: "Body is not valid JSON: \(error).")
        }
        guard case .object = json else {
            return .error(.badRequest, code: "invalid_body", message: "Body must be a JSON object.")
        }
        guard case .string(let sessionId)? = json["sessionId"], !sessionId.isEmpty,
            case .string(let userId)? = json["userId"], !userId.isEmpty
        else {
            return .error(.badRequest, code: "invalid_body", message: "Fields 'userId' and 'sessionId' are required strings.")
        }
        var channel: String?
        switch json["channel"] {
        case nil, .null?: break
        case .string(let c)?: channel = c
        default: return .error(.badRequest, code: "invalid_body", message: "Field 'channel' must be a string.")
        }
        let ids = [("userId", userId), ("sessionId", sessionId), ("channel", channel ?? "")]
        if let bad = service.limits.tooLongId(ids) ?? DialogService.Limits.controlCharacterId(ids) {
            return .error(.badRequest, code: "invalid_body", message: bad)
        }
        do {
            guard let stored = try service.latest(id) else { return notFound(id) }
            guard case .success(let snapshot) = stored.snapshot else { return corrupt(stored) }
            let from = snapshot.channel != channel ? snapshot.channel : snapshot.previousChannel
            let outcome = restorer.restore(
                RestoreTarget(conversationId: id, sessionId: sessionId, userId: userId, restoredFrom: from),
                version: snapshot.sessionVersion)
            var w = JSONWriter(capacity: 128)
            w.beginObject()
            w.key("conversationId"); w.value(id)
            w.key("sessionVersion"); w.value(snapshot.sessionVersion)
            w.key("restore"); w.value(outcome.rawValue)
            w.endObject()
            return .json(.ok, w.bytes)
        } catch { return storeError(error) }
    }

    func rollback(_ id: String, _ req: HTTPRequest) -> HTTPResponse {
        guard mediaType(req.headers["content-type"]) == "application/json" else {
            return .error(.unsupportedMediaType, code: "unsupported_media_type", message: "Send {\"toVersion\":n} as application/json.")
        }
        let json: JSONValue
        do { json = try JSONParser.parse(req.body, maxDepth: config.maxJSONDepth) } catch {
            return .error(.badRequest, code: "invalid_body", message: "Body is not valid JSON: \(error).")
        }
        guard case .number(let text)? = json["toVersion"], let target = JSONInteger.int64(text), target >= 1 else {
            return .error(.badRequest, code: "invalid_body", message: "Field 'toVersion' must be a positive integer.")
        }
        do {
            guard let snapshot = try service.rollback(id, to: target) else {
                return .error(.notFound, code: "version_not_found", message: "Version \(target) is not stored for this conversation.")
            }
            var w = JSONWriter(capacity: 512)
            snapshot.writeJSON(to: &w)
            return .json(.ok, w.bytes)
        } catch {
            return ingestError(error)
        }
    }
}

/// The credentials of `Authorization: <scheme> <credentials>` for a lowercase `scheme`
/// (compared case-insensitively, RFC 9110 §11.1), nil for another scheme.
func authorization(_ headers: HTTPHeaders, scheme: String) -> String? {
    guard let value = headers["authorization"] else { return nil }
    let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
    guard parts.count == 2, parts[0].lowercased() == scheme else { return nil }
    return parts[1].trimmingCharacters(in: .whitespaces)
}

/// The password of `Authorization: Basic base64(user:password)` (RFC 7617), any user.
func basicPassword(_ headers: HTTPHeaders) -> String? {
    guard let encoded = authorization(headers, scheme: "basic"), let data = Data(base64Encoded: encoded),
        let decoded = String(data: data, encoding: .utf8), let colon = decoded.firstIndex(of: ":")
    else { return nil }
    return String(decoded[decoded.index(after: colon)...])
}

/// The media type without parameters, lowercased ("" when absent).
func mediaType(_ header: String?) -> String {
    guard let header else { return "" }
    // Bytes, not Foundation's CharacterSet trimming (5% of a webhook's CPU): the media type
    // is ASCII by RFC 9110; spaces and tabs around it are optional whitespace.
    var bytes = Array(header.utf8.prefix { $0 != UInt8(ascii: ";") })
    while let last = bytes.last, last == 0x20 || last == 0x09 { bytes.removeLast() }
    let start = bytes.firstIndex { $0 != 0x20 && $0 != 0x09 } ?? bytes.endIndex
    return String(decoding: bytes[start...].map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
}

/// Compares secrets in time that depends only on their lengths, not on where they differ.
func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) {
        diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
    }
    return diff == 0
}
