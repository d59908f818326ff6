import DialogWire

/// Routes by method and path pattern (`/sessions/:id/versions/:n`). A path that matches
/// with another method answers 405 with `Allow`; HEAD is served by the GET route (the
/// server drops the body). Path parameters arrive percent-decoded.
public struct Router: HTTPHandler {
    public typealias Handler = @Sendable (HTTPRequest, [String: String]) -> HTTPResponse
    /// `HTTPHandler.handleLater` for one route.
    public typealias LaterHandler = @Sendable (HTTPRequest, [String: String], @escaping @Sendable (LaterAnswer) -> Void) -> Bool
    /// Checks a request's headers (credentials) before anything else; a response refuses it.
    /// It needs only the head, so the server can refuse before reading the body.
    public typealias Guard = @Sendable (_ headers: HTTPHeaders, _ peerIsLoopback: Bool) -> HTTPResponse?

    private enum Segment: Sendable {
        case literal(String)
        case parameter(String)
    }

    private struct Route: Sendable {
        let pattern: String
        let method: HTTPMethod
        let segments: [Segment]
        let guardHeaders: Guard?
        /// Never blocks and needs no body: may run on the idle loop (`servesInline`).
        let inline: Bool
        let handler: Handler
        /// May answer later from another thread (`handleLater`).
        let later: LaterHandler?
    }

    private var routes: [Route] = []

    /// The routes a path matches, in order, with their parameters.
    private struct PathMatches: Sendable {
        var candidates: [(route: Route, params: [String: String])] = []
        /// Some route's parameter in the path had an invalid percent-escape.
        var badEscape = false
    }

    /// The matches of every parameter-free pattern's own path, worked out once in `add`:
    /// the hot routes (the webhook, `/health`) are then found with one dictionary lookup
    /// instead of splitting the path and matching it against every route.
    private var knownPaths: [String: PathMatches] = [:]

    public init() {}

    /// - Parameters:
    ///   - inline: the handler never blocks (no store, no network, no lock held for long)
    ///     and reads no body, so the server may call it on its idle loop's thread.
    ///   - later: may start the request without blocking and answer it from another thread
    ///     (`HTTPHandler.handleLater`); it returns false for requests `handler` must take.
    public mutating func add(
        _ method: HTTPMethod, _ pattern: String, guard guardHeaders: Guard? = nil, inline: Bool = false,
        later: LaterHandler? = nil, _ handler: @escaping Handler
    ) {
        let segments = pattern.split(separator: "/").map { part -> Segment in
            part.hasPrefix(":") ? .parameter(String(part.dropFirst())) : .literal(String(part))
        }
        routes.append(
            Route(pattern: pattern, method: method, segments: segments, guardHeaders: guardHeaders, inline: inline, handler: handler,
                later: later))
        knownPaths = [:]
        for route in routes {
            var path = ""
            for segment in route.segments {
                guard case .literal(let text) = segment else { path = ""; break }
                path += "/" + text
            }
            if route.segments.isEmpty { path = "/" }
            if !path.isEmpty { knownPaths[path] = matches(path) }
        }
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse { route(request).response }
    public func preflight(_ head: RequestHead) -> HTTPResponse? { screen(head).response }

    public func servesInline(_ head: RequestHead) -> Bool {
        head.framing == .none && route(for: head)?.inline == true
    }

    public var answersLater: Bool { routes.contains { $0.later != nil } }

    public func servesLater(_ head: RequestHead) -> Bool {
        route(for: head)?.later != nil
    }

    /// The route that would handle a request with this head (nil: answered by the router
    /// itself, refused or unknown).
    private func route(for head: RequestHead) -> Route? {
        guard case .handler(let route, _) = resolve(
            method: head.method, path: head.path, headers: head.headers, peerIsLoopback: head.peerIsLoopback)
        else { return nil }
        return route
    }

    public func handleLater(_ request: HTTPRequest, done: @escaping @Sendable (LaterAnswer) -> Void) -> Bool {
        startLater(request) { answer, _ in done(answer) }
    }

    /// `handleLater`, with `done` also given the pattern of the route that took the request
    /// (a label for metrics).
    public func startLater(_ request: HTTPRequest, done: @escaping @Sendable (LaterAnswer, String) -> Void) -> Bool {
        guard case .handler(let route, let params) = resolve(
            method: request.method, path: request.path, headers: request.headers, peerIsLoopback: request.peerIsLoopback),
            let later = route.later
        else { return false }
        let pattern = route.pattern
        return later(request, params) { done($0, pattern) }
    }

    /// The answer a head alone decides (no route, wrong method, refused credentials) and
    /// the pattern it matched; nil response when the request may proceed to its body.
    public func screen(_ head: RequestHead) -> (response: HTTPResponse?, pattern: String?) {
        let r = resolve(method: head.method, path: head.path, headers: head.headers, peerIsLoopback: head.peerIsLoopback)
        switch r {
        case .handler(let route, _): return (nil, route.pattern)
        case .answer(let response, let pattern): return (response, pattern)
        }
    }

    /// The response and the pattern of the route that matched the path (any method), e.g.
    /// `/sessions/:id`: a low-cardinality label for metrics; nil when nothing matched.
    public func route(_ request: HTTPRequest) -> (response: HTTPResponse, pattern: String?) {
        switch resolve(method: request.method, path: request.path, headers: request.headers, peerIsLoopback: request.peerIsLoopback) {
        case .handler(let route, let params): return (route.handler(request, params), route.pattern)
        case .answer(let response, let pattern): return (response, pattern)
        }
    }

    private enum Resolution {
        case handler(Route, [String: String])
        case answer(HTTPResponse, pattern: String?)
    }

    private func resolve(method: HTTPMethod, path: String, headers: HTTPHeaders, peerIsLoopback: Bool) -> Resolution {
        let found = knownPaths[path] ?? matches(path)
        var allowed: [HTTPMethod] = []
        var matched: String?
        for (route, params) in found.candidates {
            if route.method == method || (method == .HEAD && route.method == .GET) {
                if let refused = route.guardHeaders?(headers, peerIsLoopback) { return .answer(refused, pattern: route.pattern) }
                return .handler(route, params)
            }
            matched = matched ?? route.pattern
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        if found.badEscape {
            return .answer(.error(.badRequest, code: "invalid_path", message: "The path has an invalid percent-escape."), pattern: nil)
        }
        if !allowed.isEmpty {
            if allowed.contains(.GET), !allowed.contains(.HEAD) { allowed.append(.HEAD) }
            return .answer(
                .error(
                    .methodNotAllowed, code: "method_not_allowed",
                    message: "\(method) is not allowed here; use \(allowed.map(\.rawValue).joined(separator: ", ")).",
                    headers: [("Allow", allowed.map(\.rawValue).joined(separator: ", "))]), pattern: matched)
        }
        return .answer(.error(.notFound, code: "not_found", message: "No route for \(path)."), pattern: nil)
    }

    /// Every route whose pattern `path` matches, in the order they were added.
    private func matches(_ path: String) -> PathMatches {
        // Split keeping empty segments so "/health/" does not match "/health".
        var parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if parts.first == "" { parts.removeFirst() }
        if parts.count == 1, parts[0] == "" { parts = [] }
        var found = PathMatches()
        for route in routes {
            if let params = match(route.segments, parts, badEscape: &found.badEscape) { found.candidates.append((route, params)) }
        }
        return found
    }

    private func match(_ segments: [Segment], _ parts: [Substring], badEscape: inout Bool) -> [String: String]? {
        guard segments.count == parts.count else { return nil }
        var params: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let text):
                guard part == text else { return nil }
            case .parameter(let name):
                guard !part.isEmpty else { return nil }
                guard let value = try? PercentDecoding.decode(part.utf8, plusIsSpace: false) else {
                    badEscape = true
                    return nil
                }
                params[name] = value
            }
        }
        return params
    }
}
