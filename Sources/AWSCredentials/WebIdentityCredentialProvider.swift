import Foundation
import HTTPClient

/// STS `AssumeRoleWithWebIdentity` with the token in `AWS_WEB_IDENTITY_TOKEN_FILE` for the
/// role `AWS_ROLE_ARN` (EKS IRSA, GitHub OIDC, …). The call is unsigned (the token is the
/// proof), in the Query protocol: a form POST whose answer is XML. The token file is read
/// on every fetch, because whoever mounts it rotates it.
public struct WebIdentityCredentialProvider: AWSCredentialProvider {
    public let tokenFile: String
    public let roleArn: String
    public let roleSessionName: String
    /// e.g. https://sts.us-east-1.amazonaws.com or moto's address.
    public let endpoint: String
    public let limits: CredentialHTTPLimits
    private let http: CurlHTTPClient

    public init(
        tokenFile: String, roleArn: String, roleSessionName: String, endpoint: String, http: CurlHTTPClient,
        limits: CredentialHTTPLimits = CredentialHTTPLimits()
    ) {
        self.tokenFile = tokenFile
        self.roleArn = roleArn
        self.roleSessionName = roleSessionName
        self.endpoint = baseURL(endpoint)
        self.limits = limits
        self.http = http
    }

    /// From `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`, `AWS_ROLE_SESSION_NAME` and the
    /// STS endpoint (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, else the region's).
    /// `.notConfigured` when neither variable is set; one without the other is an error.
    public static func fromEnvironment(
        _ environment: [String: String], http: CurlHTTPClient, limits: CredentialHTTPLimits = CredentialHTTPLimits()
    ) throws(AWSCredentialError) -> WebIdentityCredentialProvider {
        let file = AWSEnvironment.value("AWS_WEB_IDENTITY_TOKEN_FILE", environment)
        let role = AWSEnvironment.value("AWS_ROLE_ARN", environment)
        guard let file, let role else {
            if file == nil && role == nil { throw .notConfigured("AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set") }
            throw .invalidConfiguration("AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN go together")
        }
        let region = AWSEnvironment.region(environment)
        let name = AWSEnvironment.value("AWS_ROLE_SESSION_NAME", environment) ?? "cognigy-session-\(Int64(Date().timeIntervalSince1970))"
        return WebIdentityCredentialProvider(
            tokenFile: file, roleArn: role, roleSessionName: name,
            endpoint: AWSEnvironment.endpoint(service: "sts", environment, fallback: "https://sts.\(region).amazonaws.com"),
            http: http, limits: limits)
    }

    public func credentials() throws(AWSCredentialError) -> AWSCredentials {
        let token = try AWSEnvironment.readTokenFile(tokenFile, variable: "AWS_WEB_IDENTITY_TOKEN_FILE")
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleArn),
            ("RoleSessionName", roleSessionName), ("WebIdentityToken", token),
        ].map { "\($0.0)=\(Self.formEncode($0.1))" }.joined(separator: "&")
        let response = try CredentialHTTP.send(
            http, limits, method: "POST", url: endpoint + "/",
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "text/xml")],
            body: Array(form.utf8), what: "STS AssumeRoleWithWebIdentity")
        return try Self.parse(status: response.status, body: response.body)
    }

    /// The STS answer: on 200 `…<Credentials><AccessKeyId/><SecretAccessKey/><SessionToken/>
    /// <Expiration/></Credentials>…`; otherwise `<ErrorResponse><Error><Code/><Message/>`.
    public static func parse(status: Int, body: [UInt8]) throws(AWSCredentialError) -> AWSCredentials {
        let xml = body[...]
        guard status == 200 else {
            var code = ""
            var message = ""
            if let error = try? XMLTags.element("Error", in: xml) {
                code = (try? XMLTags.optionalText("Code", in: error)).flatMap { $0 } ?? ""
                message = (try? XMLTags.optionalText("Message", in: error)).flatMap { $0 } ?? ""
            }
            throw .rejected(status: status, code: code, message: String(message.prefix(300)))
        }
        do {
            let result = try XMLTags.element("AssumeRoleWithWebIdentityResult", in: xml)
            let credentials = try XMLTags.element("Credentials", in: result)
            let id = try XMLTags.text("AccessKeyId", in: credentials)
            let secret = try XMLTags.text("SecretAccessKey", in: credentials)
            let token = try XMLTags.text("SessionToken", in: credentials)
            let expirationText = try XMLTags.text("Expiration", in: credentials)
            guard !id.isEmpty, !secret.isEmpty, !token.isEmpty else {
                throw AWSCredentialError.malformedResponse("STS answer has an empty credential field")
            }
            guard let expiration = ISO8601Timestamp.parse(expirationText) else {
                throw AWSCredentialError.malformedResponse("STS Expiration '\(expirationText.prefix(40))' is not ISO 8601")
            }
            try CredentialHTTP.checkHeaderSafe([id, secret, token], what: "STS answer")
            return AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: token, expiration: expiration)
        } catch let failure as XMLTags.Failure {
            throw .malformedResponse("STS answer: \(failure)")
        } catch let error as AWSCredentialError {
            throw error
        } catch {
            throw .malformedResponse("STS answer: \(error)")
        }
    }

    /// application/x-www-form-urlencoded (WHATWG URL §5.2): unreserved bytes as they are,
    /// everything else percent-encoded (a JWT's `.`, `-`, `_` pass; `+`, `/`, `=` do not).
    static func formEncode(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b & 15)]))
            }
        }
        return out
    }
}
