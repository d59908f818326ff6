import Foundation
import HTTPClient

/// One set of AWS credentials. `expiration` is epoch seconds (nil: they do not expire, as
/// static keys). The secret and the session token never appear in `description`, so the
/// value can be logged or interpolated into an error without leaking them.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let accessKeyId: String
    public let secretAccessKey: String
    public let sessionToken: String?
    /// Epoch seconds after which AWS rejects them; nil for credentials that do not expire.
    public let expiration: Double?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Double? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    public var description: String {
        "AWSCredentials(accessKeyId: \(accessKeyId), secretAccessKey: ****, sessionToken: \(sessionToken == nil ? "none" : "****")"
            + (expiration.map { ", expiration: \(Int64($0))" } ?? "") + ")"
    }

    public var debugDescription: String { description }

    /// Whether they can still sign a request at `now` and stay valid for `seconds` more.
    public func isValid(at now: Double, for seconds: Double = 0) -> Bool {
        guard let expiration else { return true }
        return now + seconds < expiration
    }
}

/// Why credentials could not be had. The chain moves past `.notConfigured` only; every
/// other case is an answer from a source that was configured, and is reported.
public enum AWSCredentialError: Error, Equatable, Sendable, CustomStringConvertible {
    /// This source's variables are not set (the chain tries the next source).
    case notConfigured(String)
    /// The source is set up wrongly: a missing token file, a disallowed container URL.
    case invalidConfiguration(String)
    /// The source could not be reached (connection refused, timeout, too large an answer).
    case transport(String)
    /// The source answered with an error status; `code` is the AWS error code when it sent one.
    case rejected(status: Int, code: String, message: String)
    /// The answer could not be understood (not the expected XML/JSON, missing fields).
    case malformedResponse(String)
    /// The only credentials at hand have expired and no fresh ones could be had.
    case expired(String)
    /// No source in the chain is configured.
    case noProvider(String)

    public var description: String {
        switch self {
        case .notConfigured(let why): return "not configured: \(why)"
        case .invalidConfiguration(let why): return "invalid credential configuration: \(why)"
        case .transport(let why): return "credential source unreachable: \(why)"
        case .rejected(let status, let code, let message):
            return "credential source answered HTTP \(status)" + (code.isEmpty ? "" : " \(code)") + (message.isEmpty ? "" : ": \(message)")
        case .malformedResponse(let why): return "credential source answer not understood: \(why)"
        case .expired(let why): return "credentials expired: \(why)"
        case .noProvider(let why): return "no AWS credentials: \(why)"
        }
    }
}

/// Something that hands out credentials to sign a request with. Called before every
/// attempt; implementations cache (see `RotatingCredentialProvider`).
public protocol AWSCredentialProvider: Sendable {
    /// Credentials valid now. Never expired ones: when none can be had, it throws.
    func credentials() throws(AWSCredentialError) -> AWSCredentials
    /// AWS rejected `rejected` (an expired or revoked token): forget them, so the next
    /// `credentials()` fetches fresh ones. Newer credentials fetched meanwhile are kept.
    func invalidate(_ rejected: AWSCredentials)
}

extension AWSCredentialProvider {
    public func invalidate(_ rejected: AWSCredentials) {}
}

/// Fixed keys: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
public struct StaticCredentialProvider: AWSCredentialProvider {
    public let fixed: AWSCredentials

    public init(_ credentials: AWSCredentials) { fixed = credentials }

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
        fixed = AWSCredentials(accessKeyId: accessKeyId, secretAccessKey: secretAccessKey, sessionToken: sessionToken)
    }

    /// The environment's static keys, `.notConfigured` when `AWS_ACCESS_KEY_ID` or
    /// `AWS_SECRET_ACCESS_KEY` is missing or empty.
    public static func fromEnvironment(_ environment: [String: String]) throws(AWSCredentialError) -> StaticCredentialProvider {
        guard let id = AWSEnvironment.value("AWS_ACCESS_KEY_ID", environment),
            let secret = AWSEnvironment.value("AWS_SECRET_ACCESS_KEY", environment)
        else { throw .notConfigured("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set") }
        return StaticCredentialProvider(
            accessKeyId: id, secretAccessKey: secret, sessionToken: AWSEnvironment.value("AWS_SESSION_TOKEN", environment))
    }

    public func credentials() throws(AWSCredentialError) -> AWSCredentials { fixed }
}

/// Reading the variables the AWS SDKs read.
public enum AWSEnvironment {
    /// A variable's value, nil when unset or blank.
    public static func value(_ name: String, _ environment: [String: String]) -> String? {
        guard let v = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
        return v
    }

    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-east-1.
    public static func region(_ environment: [String: String]) -> String {
        value("AWS_REGION", environment) ?? value("AWS_DEFAULT_REGION", environment) ?? "us-east-1"
    }

    /// The endpoint of one service: `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`,
    /// else `fallback`; trailing slashes dropped.
    public static func endpoint(service: String, _ environment: [String: String], fallback: String) -> String {
        baseURL(value("AWS_ENDPOINT_URL_\(service.uppercased())", environment) ?? value("AWS_ENDPOINT_URL", environment) ?? fallback)
    }

    /// `true` (any case) turns a switch such as `AWS_EC2_METADATA_DISABLED` on.
    public static func flag(_ name: String, _ environment: [String: String]) -> Bool {
        value(name, environment)?.lowercased() == "true"
    }

    /// Reads a small file (a web-identity or authorization token) whole; `limit` bytes at
    /// most, with surrounding whitespace (the trailing newline of a mounted secret) dropped.
    static func readTokenFile(_ path: String, variable: String, limit: Int = 64 * 1024) throws(AWSCredentialError) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw .invalidConfiguration("\(variable): cannot read \(path)")
        }
        defer { try? handle.close() }
        let data: Data
        do { data = try handle.read(upToCount: limit + 1) ?? Data() } catch {
            throw .invalidConfiguration("\(variable): cannot read \(path)")
        }
        guard data.count <= limit else { throw .invalidConfiguration("\(variable): \(path) is larger than \(limit) bytes") }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw .invalidConfiguration("\(variable): \(path) is empty") }
        return token
    }
}

/// ISO 8601 / RFC 3339 timestamps as the credential sources send them
/// (`2024-05-01T12:34:56Z`, with optional fractional seconds or a `±hh:mm` offset).
public enum ISO8601Timestamp {
    /// Epoch seconds, or nil when `text` is not such a timestamp.
    public static func parse(_ text: String) -> Double? {
        let b = Array(text.utf8)
        func digits(_ at: Int, _ count: Int) -> Int? {
            guard at + count <= b.count else { return nil }
            var v = 0
            for i in at..<(at + count) {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        func byte(_ at: Int, _ c: Character) -> Bool { at < b.count && b[at] == c.asciiValue! }
        guard let year = digits(0, 4), byte(4, "-"), let month = digits(5, 2), byte(7, "-"), let day = digits(8, 2),
            byte(10, "T") || byte(10, "t") || byte(10, " "), let hour = digits(11, 2), byte(13, ":"), let minute = digits(14, 2),
            byte(16, ":"), let second = digits(17, 2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var i = 19
        var fraction = 0.0
        if byte(i, ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                fraction += Double(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start, i - start <= 9 else { return nil }
        }
        var offset = 0
        if byte(i, "Z") || byte(i, "z") {
            i += 1
        } else if byte(i, "+") || byte(i, "-") {
            let sign = byte(i, "-") ? -1 : 1
            guard let oh = digits(i + 1, 2), byte(i + 3, ":"), let om = digits(i + 4, 2), oh <= 23, om <= 59 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
            i += 6
        } else {
            return nil  // a timestamp without a zone is ambiguous
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Double(days * 86400 + hour * 3600 + minute * 60 + second - offset) + fraction
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
