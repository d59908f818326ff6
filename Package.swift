// swift-tools-version:6.0
// cognigy-session: keeps a Cognigy.AI conversation's context across channels.
// No Swift package dependencies by design: Foundation, Dispatch, Glibc, XCTest and
// C libraries from Debian through system-library targets.
import PackageDescription

let package = Package(
    name: "CognigySession",
    products: [
        .executable(name: "cognigy-session", targets: ["cognigy-session"]),
    ],
    targets: [
        // C edges: system libraries with typed shims for their variadic functions.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl"),
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Linux epoll from glibc, behind typed shims (the idle-connection loop).
        .systemLibrary(name: "CEpoll", path: "Sources/CEpoll"),
        // Thread names via prctl (variadic, so out of Swift's reach).
        .systemLibrary(name: "CThreads", path: "Sources/CThreads"),

        // The POSIX primitives every layer shares: a pthread-mutex lock (visible to
        // ThreadSanitizer), detached threads, and the monotonic clock.
        .target(name: "Primitives", dependencies: ["CThreads"], path: "Sources/Primitives"),
        // Capped exponential backoff with full jitter: pure arithmetic.
        .target(name: "Backoff", path: "Sources/Backoff"),
        // AES-256-GCM, HMAC-SHA256, SHA-256 and the `enc:v1:` field form over libcrypto;
        // OpenSSL stays out of its public API (internal import).
        .target(name: "Crypto", dependencies: ["CCrypto"], path: "Sources/Crypto"),
        // Pure rules of identity links: kinds, normalisation of phone and e-mail, link keys
        // (HMAC-SHA256 under IDENTITY_HASH_KEY), new conversation ids. No I/O.
        .target(name: "Identity", dependencies: ["Crypto"], path: "Sources/Identity"),
        // Pure code, no I/O: protobuf wire codec, JSON, proto3 JSON/form mappings.
        .target(name: "DialogWire", path: "Sources/DialogWire"),
        // Sockets, HTTP/1.1 framing and routing (JSON error bodies and percent-decoding
        // come from DialogWire, which is pure).
        .target(name: "HTTPServer", dependencies: ["Primitives", "DialogWire", "CEpoll"], path: "Sources/HTTPServer"),
        // Outgoing HTTP over libcurl (TLS, connection reuse, SigV4), shared by DynamoDB and Cognigy.
        .target(name: "HTTPClient", dependencies: ["CCurl", "Primitives"], path: "Sources/HTTPClient"),
        // AWS credentials as the SDKs find them (environment, web identity, container,
        // instance metadata), cached and renewed before they expire.
        .target(name: "AWSCredentials", dependencies: ["HTTPClient", "DialogWire", "Primitives"], path: "Sources/AWSCredentials"),
        // AWS KMS Decrypt, to unwrap `kms:` encryption keys at start.
        .target(name: "KMS", dependencies: ["AWSCredentials", "HTTPClient", "DialogWire"], path: "Sources/KMS"),
        // Cognigy REST API: OAuth2 token cache, context-inject client with 429 backoff.
        .target(name: "Cognigy", dependencies: ["HTTPClient", "Backoff", "DialogWire", "Primitives"], path: "Sources/Cognigy"),
        // Snapshot persistence: the store protocol and the SQLite store.
        .target(name: "SessionStore", dependencies: ["DialogWire", "CSQLite", "Primitives", "HTTPClient", "AWSCredentials", "Backoff"], path: "Sources/SessionStore"),
        // The ingest pipeline, merge rules, configuration and routes.
        .target(
            name: "SessionService",
            dependencies: ["DialogWire", "HTTPServer", "SessionStore", "Primitives", "Backoff", "HTTPClient", "AWSCredentials", "Cognigy", "CSQLite", "Crypto", "KMS", "Identity"],
            path: "Sources/SessionService"),
        // Wiring, command line, signals.
        .executableTarget(
            name: "cognigy-session",
            dependencies: ["Crypto", "SessionService", "HTTPServer", "SessionStore", "DialogWire"],
            path: "Sources/cognigy-session"),

        // Test helpers shared by the test targets (a raw-socket HTTP client).
        .target(name: "TestSupport", dependencies: ["Primitives", "HTTPServer", "DialogWire"], path: "Tests/TestSupport"),
        .testTarget(
            name: "DialogWireTests", dependencies: ["DialogWire"], path: "Tests/DialogWireTests",
            resources: [.copy("Fixtures")]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "TestSupport", "Primitives"], path: "Tests/HTTPServerTests"),
        .testTarget(
            name: "SessionStoreTests",
            dependencies: [
                "SessionStore", "DialogWire", "CSQLite", "HTTPServer", "HTTPClient", "AWSCredentials", "Backoff", "Primitives",
                "TestSupport",
            ],
            path: "Tests/SessionStoreTests"),
        .testTarget(
            name: "AWSCredentialsTests", dependencies: ["AWSCredentials", "HTTPServer", "HTTPClient", "Primitives", "DialogWire"],
            path: "Tests/AWSCredentialsTests"),
        .testTarget(
            name: "CognigyTests",
            dependencies: ["Cognigy", "HTTPServer", "HTTPClient", "Primitives", "Backoff", "DialogWire", "TestSupport"],
            path: "Tests/CognigyTests"),
        .testTarget(name: "CryptoTests", dependencies: ["Crypto"], path: "Tests/CryptoTests"),
        .testTarget(name: "IdentityTests", dependencies: ["Identity"], path: "Tests/IdentityTests"),
        .testTarget(name: "PrimitivesTests", dependencies: ["Primitives"], path: "Tests/PrimitivesTests"),
        .testTarget(
            name: "SessionServiceTests",
            dependencies: ["KMS", "Identity",
                "Crypto", "SessionService", "SessionStore", "HTTPServer", "DialogWire", "TestSupport", "Primitives", "Backoff", "Cognigy",
                "AWSCredentials",
            ],
            path: "Tests/SessionServiceTests"),
    ],
    swiftLanguageModes: [.v6]
)

// Release builds optimise across our own modules: generic code that one module calls in
// another (LRUCache<String, StoredVersion>, the JSON writer) is specialised at the call
// instead of running through witness tables. Measured on the webhook: about 5% less CPU a
// request (97 vs 103 µs, two interleaved rounds). Debug and sanitizer builds are unchanged.
for target in package.targets where target.type == .regular || target.type == .executable {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))
    ]
}

// libFuzzer targets (Fuzz/, scripts/fuzz.sh): declared only when COGNIGY_FUZZ=1, so plain
// builds, tests and releases never see them. scripts/fuzz.sh builds them with
// --sanitize=fuzzer --sanitize=address in their own scratch path (.build-fuzz). Each
// defines LLVMFuzzerTestOneInput and no main (-parse-as-library): libFuzzer's main runs.
if Context.environment["COGNIGY_FUZZ"] == "1" {
    package.targets.append(.target(name: "FuzzSupport", path: "Fuzz/FuzzSupport"))
    for (name, dependencies) in [
        ("fuzz-http", ["HTTPServer", "DialogWire"]), ("fuzz-protobuf", ["DialogWire"]),
        ("fuzz-json", ["DialogWire"]), ("fuzz-event", ["DialogWire"]),
    ] {
        package.targets.append(
            .executableTarget(
                name: name, dependencies: ["FuzzSupport"] + dependencies.map { .target(name: $0) },
                path: "Fuzz/Targets/\(name)", swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
        package.products.append(.executable(name: name, targets: [name]))
    }
}
