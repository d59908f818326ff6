import DialogWire
import HTTPClient

/// What every credential source's HTTP call shares: short time limits, a small answer
/// cap (a credential answer is a few KB; a larger one is not one), and transport
/// failures as typed errors.
public struct CredentialHTTPLimits: Sendable {
    /// One request's whole time limit.
    public var timeoutMs = 5000
    public var connectTimeoutMs = 1000
    /// Largest answer accepted.
    public var maxResponseBytes = 64 * 1024

    public init(timeoutMs: Int = 5000, connectTimeoutMs: Int = 1000, maxResponseBytes: Int = 64 * 1024) {
        self.timeoutMs = timeoutMs
        self.connectTimeoutMs = connectTimeoutMs
        self.maxResponseBytes = maxResponseBytes
    }
}

enum CredentialHTTP {
    static func send(
        _ http: CurlHTTPClient, _ limits: CredentialHTTPLimits, method: String, url: String, headers: [(String, String)] = [],
        body: [UInt8] = [], what: String
    ) throws(AWSCredentialError) -> HTTPClientResponse {
        var request = HTTPClientRequest(
            method: method, url: url, headers: headers, body: body, timeoutMs: limits.timeoutMs,
            connectTimeoutMs: min(limits.connectTimeoutMs, limits.timeoutMs))
        request.maxResponseBytes = limits.maxResponseBytes
        do { return try http.send(request) } catch { throw .transport("\(what): \(error)") }
    }

    /// The JSON answer of the container and instance-metadata endpoints:
    /// `{"AccessKeyId","SecretAccessKey","Token","Expiration"}` (instance metadata adds
    /// `"Code":"Success"`). Credentials without an `Expiration` are taken as not expiring.
    static func parseJSONCredentials(_ body: [UInt8], what: String) throws(AWSCredentialError) -> AWSCredentials {
        let json: JSONValue
        do { json = try JSONParser.parse(body, maxDepth: 8) } catch { throw .malformedResponse("\(what): not JSON (\(error))") }
        guard case .object = json else { throw .malformedResponse("\(what): not a JSON object") }
        if case .string(let code)? = json["Code"], code != "Success" {
            var message = ""
            if case .string(let m)? = json["Message"] { message = m }
            throw .rejected(status: 200, code: code, message: message)
        }
        func field(_ name: String) throws(AWSCredentialError) -> String {
            guard case .string(let v)? = json[name], !v.isEmpty else { throw .malformedResponse("\(what): no \(name)") }
            return v
        }
        let id = try field("AccessKeyId")
        let secret = try field("SecretAccessKey")
        var token: String?
        if case .string(let t)? = json["Token"], !t.isEmpty { token = t }
        var expiration: Double?
        if json["Expiration"] != nil {
            let text = try field("Expiration")
            guard let e = ISO8601Timestamp.parse(text) else { throw .malformedResponse("\(what): Expiration '\(text.prefix(40))' is not ISO 8601") }
            expiration = e
        }
        try checkHeaderSafe([id, secret, token ?? ""], what: what)
        return AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: token, expiration: expiration)
    }

    /// The values end up in request headers (X-Amz-Security-Token) and libcurl's SigV4
    /// input: control characters there would forge headers.
    static func checkHeaderSafe(_ values: [String], what: String) throws(AWSCredentialError) {
        for v in values where v.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw .malformedResponse("\(what): a credential field holds a control character")
        }
    }
}
