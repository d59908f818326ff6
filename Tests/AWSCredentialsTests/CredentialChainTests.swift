import Foundation
import HTTPClient
import Primitives
import XCTest
@testable import AWSCredentials

/// A provider that answers from a script and counts calls.
final class ScriptedProvider: AWSCredentialProvider, Sendable {
    let calls = Locked(0)
    let invalidated = Locked<[AWSCredentials]>([])
    private let answer: @Sendable (Int) throws(AWSCredentialError) -> AWSCredentials

    init(_ answer: @escaping @Sendable (Int) throws(AWSCredentialError) -> AWSCredentials) { self.answer = answer }

    convenience init(_ fixed: AWSCredentials) { self.init { _ in fixed } }

    func credentials() throws(AWSCredentialError) -> AWSCredentials {
        let n = calls.withLock { c -> Int in c += 1; return c }
        return try answer(n)
    }

    func invalidate(_ rejected: AWSCredentials) { invalidated.withLock { $0.append(rejected) } }
}

final class CredentialChainTests: XCTestCase {
    private func source(_ name: String, _ p: ScriptedProvider) -> CredentialChain.Source {
        CredentialChain.Source(name: name, provider: .success(p))
    }

    private func unset(_ name: String) -> CredentialChain.Source {
        CredentialChain.Source(name: name, provider: .failure(.notConfigured("\(name) not set")))
    }

    func testSkipsUnconfigured_usesFirstThatAnswers_andRemembersIt() throws {
        let second = ScriptedProvider(AWSCredentials(accessKeyId: "B", secretAccessKey: "s"))
        let third = ScriptedProvider(AWSCredentials(accessKeyId: "C", secretAccessKey: "s"))
        let chain = CredentialChain([unset("environment"), source("web identity", second), source("container", third)])
        XCTAssertEqual(try chain.credentials().accessKeyId, "B")
        XCTAssertEqual(try chain.credentials().accessKeyId, "B")
        XCTAssertEqual(chain.activeSource, "web identity")
        XCTAssertEqual(second.calls.withLock { $0 }, 2)
        XCTAssertEqual(third.calls.withLock { $0 }, 0)
    }

    func testConfiguredSourceThatFails_isReportedNotPassedOver() {
        let failing = ScriptedProvider { _ throws(AWSCredentialError) in throw .rejected(status: 400, code: "InvalidIdentityToken", message: "") }
        let later = ScriptedProvider(AWSCredentials(accessKeyId: "C", secretAccessKey: "s"))
        let chain = CredentialChain([source("web identity", failing), source("instance metadata", later)])
        XCTAssertThrowsError(try chain.credentials()) {
            XCTAssertEqual($0 as? AWSCredentialError, .rejected(status: 400, code: "InvalidIdentityToken", message: ""))
        }
        XCTAssertEqual(later.calls.withLock { $0 }, 0)
        XCTAssertNil(chain.activeSource)
    }

    func testNothingConfigured_namesEverySource() {
        let chain = CredentialChain([unset("environment"), unset("web identity")])
        XCTAssertThrowsError(try chain.credentials()) {
            guard case .noProvider(let why)? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("environment") && why.contains("web identity"), why)
        }
    }

    func testStandardOrder_environmentFirst() throws {
        let chain = CredentialChain.standard(
            environment: [
                "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent",
                "AWS_ROLE_ARN": "arn:r", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/c",
            ], http: CurlHTTPClient())
        XCTAssertEqual(chain.sources.map(\.name), ["environment", "web identity", "container", "instance metadata"])
        XCTAssertEqual(try chain.credentials().accessKeyId, "AKIA")
        XCTAssertEqual(chain.activeSource, "environment")
    }

    func testStandardOrder_webIdentityBeforeContainer() throws {
        // The web identity token file is missing: reported, the container is not tried.
        let chain = CredentialChain.standard(
            environment: [
                "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent", "AWS_ROLE_ARN": "arn:r",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/c",
            ], http: CurlHTTPClient())
        XCTAssertThrowsError(try chain.credentials()) {
            guard case .invalidConfiguration(let why)? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), why)
        }
    }

    func testStandardOrder_containerBeforeInstanceMetadata() throws {
        let imds = try FakeCredentialServer { _ in FakeCredentialServer.json("{}") }
        defer { imds.stop() }
        let container = try FakeCredentialServer { _ in FakeCredentialServer.json(FakeCredentialServer.credentialsJSON(id: "ECS", expiration: 4e9)) }
        defer { container.stop() }
        let chain = CredentialChain.standard(
            environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": container.baseURL + "/c", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.baseURL],
            http: CurlHTTPClient())
        XCTAssertEqual(try chain.credentials().accessKeyId, "ECS")
        XCTAssertEqual(imds.requests.count, 0)
    }

    func testStandard_instanceMetadataLast_skippedWhenDisabled() throws {
        let imds = FakeIMDS(credentials: FakeCredentialServer.credentialsJSON(id: "EC2", expiration: 4e9))
        let server = try FakeCredentialServer { imds.handle($0) }
        defer { server.stop() }
        let chain = CredentialChain.standard(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.baseURL], http: CurlHTTPClient())
        XCTAssertEqual(try chain.credentials().accessKeyId, "EC2")
        XCTAssertEqual(chain.activeSource, "instance metadata")

        let disabled = CredentialChain.standard(
            environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": server.baseURL, "AWS_EC2_METADATA_DISABLED": "true"], http: CurlHTTPClient())
        XCTAssertThrowsError(try disabled.credentials()) {
            guard case .noProvider? = $0 as? AWSCredentialError else { return XCTFail("\($0)") }
        }
    }

    func testInvalidate_reachesTheChosenSource() throws {
        let p = ScriptedProvider(AWSCredentials(accessKeyId: "B", secretAccessKey: "s"))
        let chain = CredentialChain([unset("environment"), source("x", p)])
        let c = try chain.credentials()
        chain.invalidate(c)
        XCTAssertEqual(p.invalidated.withLock { $0 }, [c])
    }
}
