import DialogWire

/// An error answer from DynamoDB, keyed by the `__type` suffix (the part after `#`), or a
/// transport failure (`code` "Transport"). Tests and callers match `code`.
public struct DynamoDBError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: String
    public let message: String
    /// HTTP status (0 for transport failures).
    public let status: Int

    public init(code: String, message: String, status: Int) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String { "\(code) (\(status)): \(message)" }

    public static let conditionalCheckFailed = "ConditionalCheckFailedException"
    public static let resourceNotFound = "ResourceNotFoundException"
    public static let validation = "ValidationException"
    public static let transport = "Transport"

    /// Worth another attempt after a backoff: throttling, server errors, lost connections.
    public var isRetryable: Bool {
        switch code {
        case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
            "InternalServerError", "ServiceUnavailable", "LimitExceededException", Self.transport:
            return true
        default:
            return status >= 500
        }
    }

    /// Parses an error body: `{"__type":"com.amazonaws.dynamodb.v20120810#X","message":"…"}`
    /// (or `Message`), as `application/json` or `application/x-amz-json-1.0`.
    public static func parse(status: Int, body: [UInt8]) -> DynamoDBError {
        let json = try? JSONParser.parse(body)
        var code = ""
        if case .string(let type)? = json?["__type"] {
            code = type.split(separator: "#").last.map(String.init) ?? type
        }
        if code.isEmpty { code = status >= 500 ? "InternalServerError" : "HTTP\(status)" }
        var message = ""
        if case .string(let m)? = json?["message"] { message = m } else if case .string(let m)? = json?["Message"] { message = m }
        if message.isEmpty { message = String(decoding: body.prefix(200), as: UTF8.self) }
        return DynamoDBError(code: code, message: message, status: status)
    }
}
