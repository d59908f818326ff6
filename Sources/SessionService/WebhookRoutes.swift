import DialogWire
import HTTPServer
import SessionStore

/// `POST /webhook/dialog`: the body decoded by its media type, the event handed to the
/// service (on a worker, or started on the idle loop by the fast path), and its answer or
/// error. `Routes` maps the path here.
extension Routes {
    func webhook(_ req: HTTPRequest) -> HTTPResponse {
        let event: DialogEvent
        switch decodeEvent(req) {
        case .success(let decoded): event = decoded
        case .failure(let refusal): return refusal.response
        }
        do {
            return webhookAnswer(try service.ingest(event))
        } catch {
            return ingestError(error)
        }
    }

    /// The webhook with no thread waiting for the commit (`DialogService.ingestLater`).
    /// False for anything else, a body that does not decode included: `webhook` then
    /// handles it, and answers (and logs) as always. Registered only with
    /// `WEBHOOK_FAST_PATH=true` and where the store and the cache allow it.
    func webhookLater(_ req: HTTPRequest, done: @escaping @Sendable (LaterAnswer) -> Void) -> Bool {
        guard case .success(let event) = decodeEvent(req) else { return false }
        // The answer is built here, on the loop, so the commit thread only sends it.
        return service.ingestLater(event, answer: webhookAnswer) { [self] outcome in
            switch outcome {
            case .stored(let response): done(.response(response))
            // Logged where a line may wait for stderr: on a worker.
            case .failed(let error): done(.fromWorker { ingestError(error) })
            case .ingestInstead: done(.handBack)
            }
        }
    }

    /// A body the webhook refuses, and the answer saying why.
    struct Refusal: Error {
        let response: HTTPResponse
    }

    /// The event in the body, by its media type.
    func decodeEvent(_ req: HTTPRequest) -> Result<DialogEvent, Refusal> {
        do {
            switch mediaType(req.headers["content-type"]) {
            case "application/json":
                return .success(try DialogEvent(jsonBytes: req.body, maxDepth: config.maxJSONDepth))
            case "application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf":
                return .success(try DialogEvent(protobufBytes: req.body))
            case "application/x-www-form-urlencoded":
                return .success(try DialogEvent(formBytes: req.body, maxDepth: config.maxJSONDepth))
            case let other:
                return .failure(Refusal(response: .error(
                    .unsupportedMediaType, code: "unsupported_media_type",
                    message: "Content-Type \(other.isEmpty ? "(none)" : other) is not supported; use application/json, application/x-protobuf or application/x-www-form-urlencoded.")))
            }
        } catch {
            return .failure(Refusal(response: .error(.badRequest, code: "invalid_body", message: error.description)))
        }
    }

    /// The 200 for an applied (or duplicate) event.
    func webhookAnswer(_ result: IngestResult) -> HTTPResponse {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.key("status"); w.value(result.status.rawValue)
        w.key("conversationId"); w.value(result.snapshot.conversationId)
        w.key("sessionVersion"); w.value(result.snapshot.sessionVersion)
        w.key("channelSwitched"); w.value(result.channelSwitched)
        w.key("restore"); w.value(result.restore.rawValue)
        w.key("linkedBy"); w.value(result.linkedBy)
        w.key("linkConflicts")
        w.beginArray()
        for conflict in result.linkConflicts { w.value(conflict) }
        w.endArray()
        w.key("context"); SessionMerge.writeContext(result.snapshot, to: &w)
        w.endObject()
        if logger.level <= .debug {
            logger.debug(
                "event applied",
                [("conversation_id", .string(result.snapshot.conversationId)), ("status", .string(result.status.rawValue)),
                 ("version", .int(result.snapshot.sessionVersion)), ("conflicts", .int(Int64(result.conflicts)))])
        }
        return .json(.ok, w.bytes)
    }

    func ingestError(_ error: IngestError) -> HTTPResponse {
        switch error {
        case .invalidEvent(let why):
            return .error(.badRequest, code: "invalid_event", message: why)
        case .snapshotTooLarge(let limit):
            return .error(
                .payloadTooLarge, code: "snapshot_too_large",
                message: "The conversation's merged state would exceed \(limit) bytes.")
        case .storeUnavailable(let why):
            logger.warn("store unavailable", [("error", .string(why))])
            return .error(
                .serviceUnavailable, code: "store_unavailable", message: "The session store cannot take the write now; retry.",
                headers: [("Retry-After", "1")])
        case .storeRejected(let why):
            logger.error("store rejected the request", [("error", .string(why))])
            return .error(
                .internalServerError, code: "store_rejected",
                message: "The session store rejected the request; see the service log.")
        case .storeAuthFailed(let why):
            logger.error("store authentication failed", [("error", .string(why))])
            return Self.storeAuthFailed
        case .encryptionKeyUnavailable(let keyId):
            logger.error(
                "a stored value is encrypted with a key ENCRYPTION_KEYS does not list; nothing written",
                [("key_id", .string(keyId))])
            return .error(
                .internalServerError, code: "encryption_key_unavailable",
                message: "The conversation is encrypted with a key this service does not have; see the service log.")
        case .tooMuchContention:
            return .error(
                .serviceUnavailable, code: "write_contention",
                message: "Too many concurrent writes to this conversation; retry.", headers: [("Retry-After", "1")])
        }
    }
}
