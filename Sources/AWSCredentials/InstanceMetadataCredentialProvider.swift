import Foundation
import HTTPClient

/// The EC2 instance role through IMDSv2: PUT `/latest/api/token` (with
/// `X-aws-ec2-metadata-token-ttl-seconds`), then with `X-aws-ec2-metadata-token` GET
/// `/latest/meta-data/iam/security-credentials/` (the role name) and `…/<role>` (JSON
/// credentials). IMDSv1 (no token) is never used: it is what SSRF attacks reach.
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it (a local fake in tests);
/// `AWS_EC2_METADATA_DISABLED=true` turns it off.
public struct InstanceMetadataCredentialProvider: AWSCredentialProvider {
    public static let defaultEndpoint = "http://169.254.169.254"
    /// The session token's lifetime asked for (the SDKs' 6 hours).
    public static let tokenTTLSeconds = 21_600

    public let endpoint: String
    public let limits: CredentialHTTPLimits
    private let http: CurlHTTPClient

    /// The SDKs' instance-metadata limits: 1 s per call, as off EC2 nothing answers.
    public static let defaultLimits = CredentialHTTPLimits(timeoutMs: 1000, connectTimeoutMs: 1000, maxResponseBytes: 64 * 1024)

    public init(endpoint: String = defaultEndpoint, http: CurlHTTPClient, limits: CredentialHTTPLimits = defaultLimits) {
        self.endpoint = baseURL(endpoint)
        self.limits = limits
        self.http = http
    }

    /// `.notConfigured` when `AWS_EC2_METADATA_DISABLED=true`.
    public static func fromEnvironment(
        _ environment: [String: String], http: CurlHTTPClient, limits: CredentialHTTPLimits = defaultLimits
    ) throws(AWSCredentialError) -> InstanceMetadataCredentialProvider {
        if AWSEnvironment.flag("AWS_EC2_METADATA_DISABLED", environment) {
            throw .notConfigured("AWS_EC2_METADATA_DISABLED=true")
        }
        return InstanceMetadataCredentialProvider(
            endpoint: AWSEnvironment.value("AWS_EC2_METADATA_SERVICE_ENDPOINT", environment) ?? defaultEndpoint, http: http,
            limits: limits)
    }

    public func credentials() throws(AWSCredentialError) -> AWSCredentials {
        let tokenAnswer = try CredentialHTTP.send(
            http, limits, method: "PUT", url: endpoint + "/latest/api/token",
            headers: [("X-aws-ec2-metadata-token-ttl-seconds", String(Self.tokenTTLSeconds)), ("Content-Length", "0")],
            what: "instance metadata token")
        guard tokenAnswer.status == 200 else { throw Self.rejected(tokenAnswer, "instance metadata token") }
        let token = String(decoding: tokenAnswer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .malformedResponse("instance metadata token is empty or holds a control character")
        }
        let header = [("X-aws-ec2-metadata-token", token)]
        let base = endpoint + "/latest/meta-data/iam/security-credentials/"
        let roles = try CredentialHTTP.send(http, limits, method: "GET", url: base, headers: header, what: "instance metadata role")
        guard roles.status == 200 else { throw Self.rejected(roles, "instance metadata role (no instance profile?)") }
        let role = String(decoding: roles.body, as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        // IAM role names are [\w+=,.@-]{1,64}; anything else must not reach the URL path.
        guard Self.isRoleName(role) else { throw .malformedResponse("instance metadata role name is missing or invalid") }
        let answer = try CredentialHTTP.send(http, limits, method: "GET", url: base + role, headers: header, what: "instance metadata credentials")
        guard answer.status == 200 else { throw Self.rejected(answer, "instance metadata credentials") }
        return try CredentialHTTP.parseJSONCredentials(answer.body, what: "instance metadata credentials")
    }

    static func isRoleName(_ s: String) -> Bool {
        guard (1...64).contains(s.utf8.count) else { return false }
        return s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "_+=,.@-".utf8.contains(b)
        }
    }

    private static func rejected(_ response: HTTPClientResponse, _ what: String) -> AWSCredentialError {
        .rejected(status: response.status, code: "", message: what)
    }
}
