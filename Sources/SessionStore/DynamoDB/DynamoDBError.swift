import DialogWire

/// An error answer from DynamoDB, keyed by the `__type` suffix (the part after `#`), or a
/// transport failure (`code` "Transport"). Tests and callers match `code`.
public struct DynamoDBError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: String
    public let message: String
    /// HTTP status (0 for transport failures).
    public let status: Int
    /// `TransactionCanceledException`: one `Code` per item of the transaction, in order
    /// (`None`, `ConditionalCheckFailed`, `TransactionConflict`, …).
    public var cancellationReasons: [String] = []
    /// An earlier attempt of the same request ended without a clear answer (a transport
    /// failure or a 5xx), so it may have been applied: a conditional write that now fails
    /// may have failed against its own first attempt.
    public var afterAmbiguousAttempt = false

    public init(code: String, message: String, status: Int, cancellationReasons: [String] = []) {
        self.code = code
        self.message = message
        self.status = status
        self.cancellationReasons = cancellationReasons
    }

    public var description: String { "\(code) (\(status)): \(message)" }

    public static let conditionalCheckFailed = "ConditionalCheckFailedException"
    public static let transactionCanceled = "TransactionCanceledException"
    public static let resourceNotFound = "ResourceNotFoundException"
    public static let validation = "ValidationException"
    public static let transport = "Transport"
    /// No credentials to sign with (the provider failed); status 0.
    public static let credentialsUnavailable = "CredentialsUnavailable"

    /// The codes AWS answers when it does not accept the request's credentials or
    /// signature (DynamoDB's JSON `__type`s and the Query protocol's `Code`s).
    public static let authFailureCodes: Set<String> = [
        "ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException", "AccessDeniedException",
        "InvalidSignatureException", "MissingAuthenticationToken", "MissingAuthenticationTokenException",
        "IncompleteSignature", "IncompleteSignatureException", "InvalidClientTokenId", "SignatureDoesNotMatch",
        "AuthFailure", "NotAuthorized", "UnauthorizedOperation",
    ]

    /// The store is reachable but does not accept who we are: credentials missing,
    /// expired, revoked or without permission. Not transient in the "retry in a second"
    /// sense, and not a store outage: the operator must look (or the credentials renew).
    public var isAuthFailure: Bool {
        code == Self.credentialsUnavailable || Self.authFailureCodes.contains(code) || code == "HTTP403"
    }

    /// A conditional write lost: its condition failed, or (in a transaction) another
    /// transaction held one of its items. Either way: re-read and retry.
    public var isConditionFailure: Bool {
        code == Self.conditionalCheckFailed
            || (code == Self.transactionCanceled
                && cancellationReasons.contains { $0 == "ConditionalCheckFailed" || $0 == "TransactionConflict" })
    }

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
        var reasons: [String] = []
        if case .array(let list)? = json?["CancellationReasons"] {
            for reason in list {
                if case .string(let c)? = reason["Code"] { reasons.append(c) } else { reasons.append("None") }
            }
        }
        return DynamoDBError(code: code, message: message, status: status, cancellationReasons: reasons)
    }
}
