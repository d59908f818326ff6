@testable import HTTPServer

extension HTTPServer {
    /// A started server on 127.0.0.1, on a port of the system's choosing, for tests of the
    /// idle loop: the hand-off delay is long (5 s), so a connection parked within it was
    /// parked by the inline or later rule, unless `configure` says otherwise.
    static func startedForIdleLoop(
        handler: any HTTPHandler, _ configure: (inout HTTPServerConfiguration) -> Void
    ) throws -> HTTPServer {
        var config = HTTPServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.idleHandoffDelayMs = 5000
        configure(&config)
        let server = try HTTPServer(configuration: config, handler: handler)
        try server.start()
        return server
    }
}
