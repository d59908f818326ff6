import HTTPClient
import Primitives

/// The AWS SDKs' default chain, in their order: the environment's static keys, web
/// identity, the container endpoint, instance metadata. A source whose variables are not
/// set is passed over; the first one that is set is used and remembered, so later calls
/// go straight to it. A source that is set but fails is reported, not passed over (as the
/// Rust and Go SDKs do): a broken web-identity setup must not silently fall through to
/// an instance role with other permissions.
public final class CredentialChain: AWSCredentialProvider {
    public struct Source: Sendable {
        public let name: String
        /// The provider, or why this source cannot be used (`.notConfigured`: skip it).
        public let provider: Result<any AWSCredentialProvider, AWSCredentialError>

        public init(name: String, provider: Result<any AWSCredentialProvider, AWSCredentialError>) {
            self.name = name
            self.provider = provider
        }

        public init(name: String, _ make: () throws(AWSCredentialError) -> any AWSCredentialProvider) {
            self.name = name
            do { provider = .success(try make()) } catch { provider = .failure(error) }
        }
    }

    public let sources: [Source]
    private let chosen = Locked<Int?>(nil)

    public init(_ sources: [Source]) { self.sources = sources }

    /// The standard chain read from `environment` (the process environment, filtered to
    /// the variables the service knows).
    public static func standard(environment: [String: String], http: CurlHTTPClient) -> CredentialChain {
        CredentialChain([
            Source(name: "environment") { () throws(AWSCredentialError) in try StaticCredentialProvider.fromEnvironment(environment) },
            Source(name: "web identity") { () throws(AWSCredentialError) in
                try WebIdentityCredentialProvider.fromEnvironment(environment, http: http)
            },
            Source(name: "container") { () throws(AWSCredentialError) in try ContainerCredentialProvider.fromEnvironment(environment, http: http) },
            Source(name: "instance metadata") { () throws(AWSCredentialError) in
                try InstanceMetadataCredentialProvider.fromEnvironment(environment, http: http)
            },
        ])
    }

    /// The name of the source in use, once one has answered.
    public var activeSource: String? { chosen.withLock { $0 }.map { sources[$0].name } }

    public func credentials() throws(AWSCredentialError) -> AWSCredentials {
        if let i = chosen.withLock({ $0 }), case .success(let provider) = sources[i].provider {
            return try provider.credentials()
        }
        var skipped: [String] = []
        for (i, source) in sources.enumerated() {
            switch source.provider {
            case .failure(.notConfigured(let why)):
                skipped.append("\(source.name): \(why)")
            case .failure(let error):
                throw error
            case .success(let provider):
                do {
                    let credentials = try provider.credentials()
                    chosen.withLock { $0 = i }
                    return credentials
                } catch .notConfigured(let why) {
                    skipped.append("\(source.name): \(why)")
                }
            }
        }
        throw .noProvider(skipped.joined(separator: "; "))
    }

    public func invalidate(_ rejected: AWSCredentials) {
        if let i = chosen.withLock({ $0 }), case .success(let provider) = sources[i].provider { provider.invalidate(rejected) }
    }
}
