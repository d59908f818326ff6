import AWSCredentials
import DialogWire
import Foundation
import HTTPClient

/// Why a KMS call failed: AWS's `__type` suffix (`InvalidCiphertextException`,
/// `AccessDeniedException`, …) or `Transport`/`InvalidResponse`/`CredentialsUnavailable`.
public struct KMSError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: String
    public let message: String
    public var description: String { "\(code): \(message)" }
}

/// AWS KMS over libcurl: the JSON 1.1 protocol (`POST /`, `X-Amz-Target: TrentService.<Op>`,
/// `application/x-amz-json-1.1`), SigV4-signed for service `kms` with the credentials the
/// provider hands out. The service only needs `Decrypt`, once per `kms:` key at start.
public final class KMSClient: Sendable {
    public let endpoint: String
    public let region: String
    private let credentials: any AWSCredentialProvider
    private let http: CurlHTTPClient
    /// One call's time limit.
    public let timeoutMs = 5000

    public init(endpoint: String, region: String, credentials: any AWSCredentialProvider, http: CurlHTTPClient = CurlHTTPClient()) {
        self.endpoint = baseURL(endpoint)
        self.region = region
        self.credentials = credentials
        self.http = http
    }

    /// The public AWS endpoint of a region.
    public static func awsEndpoint(region: String) -> String { "https://kms.\(region).amazonaws.com" }

    /// Unwraps a data key: `Decrypt` of a `CiphertextBlob` (as `GenerateDataKey` returns it).
    public func decrypt(ciphertextBlob: [UInt8]) throws(KMSError) -> [UInt8] {
        var w = JSONWriter(capacity: 128 + ciphertextBlob.count * 2)
        w.beginObject()
        w.key("CiphertextBlob"); w.value(Data(ciphertextBlob).base64EncodedString())
        w.endObject()
        let answer = try call("Decrypt", w.bytes)
        guard case .string(let plaintext)? = answer["Plaintext"], let bytes = Data(base64Encoded: plaintext) else {
            throw KMSError(code: "InvalidResponse", message: "Decrypt answered without a base64 Plaintext")
        }
        return Array(bytes)
    }

    /// One KMS operation; the parsed JSON answer.
    public func call(_ operation: String, _ body: [UInt8]) throws(KMSError) -> JSONValue {
        let signing: AWSCredentials
        do { signing = try credentials.credentials() } catch {
            throw KMSError(code: "CredentialsUnavailable", message: error.description)
        }
        var request = HTTPClientRequest(
            method: "POST", url: endpoint + "/",
            headers: [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "TrentService.\(operation)")],
            body: body, timeoutMs: timeoutMs, connectTimeoutMs: min(2000, timeoutMs),
            awsSigV4: AWSSigV4(
                region: region, service: "kms", accessKeyId: signing.accessKeyId, secretAccessKey: signing.secretAccessKey,
                sessionToken: signing.sessionToken))
        request.maxResponseBytes = 64 * 1024
        let response: HTTPClientResponse
        do { response = try http.send(request) } catch { throw KMSError(code: "Transport", message: error.description) }
        let json = try? JSONParser.parse(response.body)
        guard response.status == 200 else {
            var code = "HTTP\(response.status)"
            if case .string(let type)? = json?["__type"] { code = type.split(separator: "#").last.map(String.init) ?? type }
            var message = ""
            if case .string(let m)? = json?["message"] { message = m } else if case .string(let m)? = json?["Message"] { message = m }
            throw KMSError(code: code, message: message)
        }
        guard let json else { throw KMSError(code: "InvalidResponse", message: "answer is not JSON") }
        return json
    }
}
