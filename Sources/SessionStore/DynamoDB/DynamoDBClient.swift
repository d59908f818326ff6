import AWSCredentials
import Backoff
import DialogWire
import Foundation
import HTTPClient
import Primitives

/// The DynamoDB JSON protocol over libcurl: `POST /` with `X-Amz-Target:
/// DynamoDB_20120810.<Operation>`, `application/x-amz-json-1.0`, SigV4-signed by libcurl.
/// Throttling, 5xx and connection failures are retried with capped, jittered backoff
/// inside a deadline; other errors are returned at once. Each attempt is signed with what
/// the credential provider hands out at that moment, so renewed credentials take effect
/// at once; an authentication error invalidates them (see `call`).
public final class DynamoDBClient: Sendable {
    public struct Configuration: Sendable {
        /// e.g. https://dynamodb.us-east-1.amazonaws.com or http://localhost:8000 (no trailing slash needed).
        public var endpoint: String
        public var region: String
        /// Static keys, used when the client is made without a credential provider.
        public var accessKeyId: String
        public var secretAccessKey: String
        public var sessionToken: String?
        /// One attempt's time limit.
        public var requestTimeoutMs = 2000
        public var connectTimeoutMs = 1000
        /// All attempts of one operation, backoff included, end by this deadline.
        public var deadlineMs = 4000
        public var maxAttempts = 6
        public var backoff = Backoff(baseMs: 25, capMs: 400)

        /// Without keys: for a client given a credential provider.
        public init(endpoint: String, region: String) {
            self.init(endpoint: endpoint, region: region, accessKeyId: "", secretAccessKey: "")
        }

        public init(endpoint: String, region: String, accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
            self.endpoint = baseURL(endpoint)
            self.region = region
            self.accessKeyId = accessKeyId
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
        }

        /// The public AWS endpoint of a region.
        public static func awsEndpoint(region: String) -> String { "https://dynamodb.\(region).amazonaws.com" }
    }

    public let configuration: Configuration
    public let credentials: any AWSCredentialProvider
    private let http: CurlHTTPClient
    private let counts = Locked<[String: Int]>([:])
    private let retries = Locked<[String: Int]>([:])

    /// Signs with the configuration's static keys.
    public convenience init(configuration: Configuration, http: CurlHTTPClient = CurlHTTPClient()) {
        self.init(
            configuration: configuration,
            credentials: StaticCredentialProvider(
                accessKeyId: configuration.accessKeyId, secretAccessKey: configuration.secretAccessKey,
                sessionToken: configuration.sessionToken),
            http: http)
    }

    /// - Parameters:
    ///   - credentials: asked before every attempt; wrap expiring sources in a
    ///     `RotatingCredentialProvider`.
    public init(configuration: Configuration, credentials: any AWSCredentialProvider, http: CurlHTTPClient = CurlHTTPClient()) {
        self.configuration = configuration
        self.credentials = credentials
        self.http = http
    }

    /// Requests sent per operation (each attempt counts), for measurements and tests.
    public var requestCounts: [String: Int] { counts.withLock { $0 } }

    /// Attempts after the first per operation: throttling, 5xx and transport failures
    /// re-sent within the deadline (the `/metrics` retry counter).
    public var retryCounts: [String: Int] { retries.withLock { $0 } }

    /// Sends one operation; returns the parsed JSON answer. No credentials → a
    /// `DynamoDBError` with code `CredentialsUnavailable` (an auth failure, not retried
    /// here: the provider has its own time limits and failure backoff). An authentication
    /// error from DynamoDB (`isAuthFailure`) invalidates the credentials that were refused
    /// and, when the provider then hands out different ones, is tried once more with those
    /// (nothing was applied: AWS authenticates before it acts).
    public func call(_ operation: String, _ body: [UInt8]) throws(DynamoDBError) -> JSONValue {
        let c = configuration
        let deadline = monotonicMs() + Int64(c.deadlineMs)
        var request = HTTPClientRequest(
            method: "POST", url: c.endpoint + "/",
            headers: [("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", "DynamoDB_20120810.\(operation)")],
            body: body, timeoutMs: c.requestTimeoutMs, connectTimeoutMs: c.connectTimeoutMs)
        // DynamoDB answers at most 1 MB of data per Query; base64 and JSON make that ~1.4 MB.
        request.maxResponseBytes = 4 << 20
        var last = DynamoDBError(code: DynamoDBError.transport, message: "no attempt made", status: 0)
        var ambiguous = false
        var authRetried = false
        for attempt in 0..<max(1, c.maxAttempts) {
            let remaining = deadline - monotonicMs()
            if remaining <= 0 { break }
            let signing: AWSCredentials
            do { signing = try credentials.credentials() } catch {
                throw DynamoDBError(code: DynamoDBError.credentialsUnavailable, message: error.description, status: 0)
            }
            request.awsSigV4 = AWSSigV4(
                region: c.region, service: "dynamodb", accessKeyId: signing.accessKeyId, secretAccessKey: signing.secretAccessKey,
                sessionToken: signing.sessionToken)
            request.timeoutMs = Int(min(Int64(c.requestTimeoutMs), remaining))
            request.connectTimeoutMs = min(c.connectTimeoutMs, request.timeoutMs)
            counts.withLock { $0[operation, default: 0] += 1 }
            if attempt > 0 { retries.withLock { $0[operation, default: 0] += 1 } }
            do {
                let response = try http.send(request)
                if response.status == 200 {
                    do { return try JSONParser.parse(response.body) } catch {
                        last = DynamoDBError(code: "InvalidResponse", message: "answer is not JSON: \(error)", status: 200)
                        throw last
                    }
                }
                last = DynamoDBError.parse(status: response.status, body: response.body)
            } catch let error as HTTPClientError {
                last = DynamoDBError(code: DynamoDBError.transport, message: error.description, status: 0)
            } catch {
                throw last
            }
            last.afterAmbiguousAttempt = ambiguous
            if last.isAuthFailure {
                credentials.invalidate(signing)
                guard !authRetried, let fresh = try? credentials.credentials(),
                    fresh.accessKeyId != signing.accessKeyId || fresh.sessionToken != signing.sessionToken
                else { throw last }
                authRetried = true
                continue
            }
            guard last.isRetryable else { throw last }
            // A lost connection or a 5xx may come after DynamoDB applied the request.
            if last.code == DynamoDBError.transport || last.status >= 500 { ambiguous = true }
            let wait = c.backoff.delayMs(attempt: attempt, unit: Double.random(in: 0..<1))
            let left = deadline - monotonicMs()
            if Double(left) <= wait { break }
            sleepMs(wait)
        }
        throw last
    }
}
