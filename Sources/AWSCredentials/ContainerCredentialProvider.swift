import Foundation
import DialogWire
import HTTPClient

/// The container credential endpoint (ECS task roles, EKS Pod Identity, local agents):
/// GET `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on http://169.254.170.2, or
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with `Authorization` from
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read on every fetch: it is rotated) or
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN`. The answer is JSON
/// `{"AccessKeyId","SecretAccessKey","Token","Expiration"}`.
public struct ContainerCredentialProvider: AWSCredentialProvider {
    public static let ecsHost = "http://169.254.170.2"

    public enum Authorization: Sendable, Equatable {
        case none
        case token(String)
        case tokenFile(String)
    }

    public let url: String
    public let authorization: Authorization
    public let limits: CredentialHTTPLimits
    private let http: CurlHTTPClient

    public init(url: String, authorization: Authorization, http: CurlHTTPClient, limits: CredentialHTTPLimits = CredentialHTTPLimits()) {
        self.url = url
        self.authorization = authorization
        self.limits = limits
        self.http = http
    }

    /// `.notConfigured` when neither URI variable is set.
    public static func fromEnvironment(
        _ environment: [String: String], http: CurlHTTPClient, limits: CredentialHTTPLimits = CredentialHTTPLimits()
    ) throws(AWSCredentialError) -> ContainerCredentialProvider {
        let url = try resolveURL(environment)
        var authorization = Authorization.none
        if let file = AWSEnvironment.value("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", environment) {
            authorization = .tokenFile(file)
        } else if let token = AWSEnvironment.value("AWS_CONTAINER_AUTHORIZATION_TOKEN", environment) {
            authorization = .token(token)
        }
        return ContainerCredentialProvider(url: url, authorization: authorization, http: http, limits: limits)
    }

    /// The URL to fetch from, as the AWS SDKs resolve it: a relative URI goes to the ECS
    /// agent's 169.254.170.2; a full URI must be https, or http to a loopback address or
    /// the ECS/EKS agents' link-local addresses, so the authorization token is never sent
    /// in clear text across a network.
    public static func resolveURL(_ environment: [String: String]) throws(AWSCredentialError) -> String {
        if let relative = AWSEnvironment.value("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", environment) {
            guard relative.hasPrefix("/"), !relative.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
                throw .invalidConfiguration("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path starting with /")
            }
            return ecsHost + relative
        }
        guard let full = AWSEnvironment.value("AWS_CONTAINER_CREDENTIALS_FULL_URI", environment) else {
            throw .notConfigured("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and AWS_CONTAINER_CREDENTIALS_FULL_URI are not set")
        }
        guard let u = URL(string: full), let scheme = u.scheme?.lowercased(), let host = u.host?.lowercased(), !host.isEmpty,
            !full.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F })
        else { throw .invalidConfiguration("AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL") }
        switch scheme {
        case "https": return full
        case "http":
            guard isAllowedHTTPHost(host) else {
                throw .invalidConfiguration(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI over http must name a loopback address, 169.254.170.2 or 169.254.170.23 (got \(host))")
            }
            return full
        default: throw .invalidConfiguration("AWS_CONTAINER_CREDENTIALS_FULL_URI must be http or https")
        }
    }

    /// Loopback (127.0.0.0/8, ::1, localhost) and the ECS (169.254.170.2) and EKS Pod
    /// Identity (169.254.170.23, fd00:ec2::23) agents.
    static func isAllowedHTTPHost(_ host: String) -> Bool {
        let h = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if h == "localhost" || h == "::1" || h == "169.254.170.2" || h == "169.254.170.23" || h == "fd00:ec2::23" { return true }
        let octets = h.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    public func credentials() throws(AWSCredentialError) -> AWSCredentials {
        var headers: [(String, String)] = [("Accept", "application/json")]
        var token: String?
        switch authorization {
        case .none: break
        case .token(let t): token = t
        case .tokenFile(let path): token = try AWSEnvironment.readTokenFile(path, variable: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        }
        if let token {
            // A CR or LF would end the header and start another.
            guard !token.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
                throw .invalidConfiguration("the container authorization token holds a control character")
            }
            headers.append(("Authorization", token))
        }
        let response = try CredentialHTTP.send(http, limits, method: "GET", url: url, headers: headers, what: "container credentials")
        guard response.status == 200 else {
            var code = ""
            var message = String(decoding: response.body.prefix(200), as: UTF8.self)
            if let json = try? JSONParser.parse(response.body, maxDepth: 8) {
                if case .string(let c)? = json["Code"] { code = c }
                if case .string(let m)? = json["Message"] { message = m }
            }
            throw .rejected(status: response.status, code: code, message: message)
        }
        return try CredentialHTTP.parseJSONCredentials(response.body, what: "container credentials")
    }
}
