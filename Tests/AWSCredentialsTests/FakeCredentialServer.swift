import Foundation
import HTTPServer
import Primitives

/// A credential endpoint on a real socket (port 0): answers with `respond` and records
/// every request, for the container, instance-metadata and STS providers.
final class FakeCredentialServer: HTTPHandler, @unchecked Sendable {
    // @unchecked Sendable: `server` is set once in init; the rest is behind locks.
    struct Seen: Sendable {
        let method: String
        let path: String
        let headers: [(name: String, value: String)]
        let body: String
        func header(_ name: String) -> String? { headers.first { $0.name == name.lowercased() }?.value }
    }

    private let respond: @Sendable (HTTPRequest) -> HTTPResponse
    private let seen = Locked<[Seen]>([])
    private(set) var server: HTTPServer!
    var baseURL: String { "http://127.0.0.1:\(server.port)" }
    var requests: [Seen] { seen.withLock { $0 } }

    init(_ respond: @escaping @Sendable (HTTPRequest) -> HTTPResponse) throws {
        self.respond = respond
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.drainTimeoutMs = 200
        server = try HTTPServer(configuration: config, handler: self)
        try server.start()
    }

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        seen.withLock {
            $0.append(
                Seen(
                    method: request.method.rawValue, path: request.path, headers: request.headers.fields,
                    body: String(decoding: request.body, as: UTF8.self)))
        }
        return respond(request)
    }

    func stop() { server.shutdown() }

    static func json(_ text: String, status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(text.utf8))
    }

    static func xml(_ text: String, status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "text/xml")], body: Array(text.utf8))
    }

    /// An ISO 8601 UTC timestamp `seconds` from now.
    static func iso(_ epoch: Double) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: epoch))
    }

    static func credentialsJSON(id: String, expiration: Double, extra: String = "") -> String {
        #"{\#(extra)"AccessKeyId":"\#(id)","SecretAccessKey":"secret-\#(id)","Token":"token-\#(id)","Expiration":"\#(iso(expiration))"}"#
    }
}

/// A clock tests move by hand.
final class ManualClock: Sendable {
    private let now: Locked<Double>
    init(_ start: Double = 1_700_000_000) { now = Locked(start) }
    func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
    var read: @Sendable () -> Double { { [now] in now.withLock { $0 } } }
}
