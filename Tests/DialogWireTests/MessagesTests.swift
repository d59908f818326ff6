import Foundation
import XCTest
@testable import DialogWire

/// The committed golden vectors (scripts/gen-golden-vectors.sh, real protoc) in both directions.
final class MessagesTests: XCTestCase {
    struct Case {
        let name: String
        let type: String
        let fields: JSONValue
        let bytes: [UInt8]
    }

    static func loadCases(_ section: String) throws -> [Case] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "golden", withExtension: "json", subdirectory: "Fixtures"))
        let root = try JSONParser.parse(Array(try Data(contentsOf: url)))
        guard case .array(let cases)? = root[section] else { throw XCTSkip("no \(section) section") }
        return try cases.map { c in
            guard case .string(let name)? = c["name"], case .string(let type)? = c["type"],
                case .string(let hex)? = c["hex"], let fields = c["fields"]
            else { throw NSError(domain: "fixture", code: 1) }
            return Case(name: name, type: type, fields: fields, bytes: try hexBytes(hex))
        }
    }

    static func hexBytes(_ hex: String) throws -> [UInt8] {
        let chars = Array(hex.utf8)
        return try stride(from: 0, to: chars.count, by: 2).map { i in
            guard let hi = PercentDecoding.hexValue(chars[i]), let lo = PercentDecoding.hexValue(chars[i + 1]) else {
                throw NSError(domain: "hex", code: 1)
            }
            return hi << 4 | lo
        }
    }

    static func string(_ v: JSONValue?) -> String { if case .string(let s)? = v { return s } else { return "" } }
    static func int(_ v: JSONValue?) -> Int64 { if case .number(let n)? = v { return Int64(n)! } else { return 0 } }
    static func stringMap(_ v: JSONValue?) -> [String: String] {
        guard case .object(let members)? = v else { return [:] }
        return Dictionary(members.map { ($0.key, string($0.value)) }, uniquingKeysWith: { $1 })
    }

    static func event(_ f: JSONValue) -> DialogEvent {
        DialogEvent(
            conversationId: string(f["conversation_id"]), channel: string(f["channel"]), intent: string(f["intent"]),
            slots: stringMap(f["slots"]), timestamp: int(f["timestamp"]), userId: string(f["user_id"]),
            sessionId: string(f["session_id"]), eventId: string(f["event_id"]), identities: stringMap(f["identities"]))
    }

    static func snapshot(_ f: JSONValue) -> SessionSnapshot {
        var s = SessionSnapshot()
        s.conversationId = string(f["conversation_id"])
        s.sessionVersion = int(f["session_version"])
        s.channel = string(f["channel"])
        s.previousChannel = string(f["previous_channel"])
        s.intent = string(f["intent"])
        s.slots = stringMap(f["slots"])
        if case .object(let members)? = f["channels"] {
            for m in members {
                s.channels[m.key] = ChannelState(
                    userId: string(m.value["user_id"]), sessionId: string(m.value["session_id"]),
                    lastSeen: int(m.value["last_seen"]))
            }
        }
        s.eventTimestamp = int(f["event_timestamp"])
        s.updatedAt = int(f["updated_at"])
        s.expiresAt = int(f["expires_at"])
        if case .array(let ids)? = f["recent_event_ids"] { s.recentEventIds = ids.map { string($0) } }
        if case .array(let digests)? = f["recent_event_digests"] {
            s.recentEventDigests = digests.map { if case .number(let n) = $0 { return UInt64(n)! } else { return 0 } }
        }
        return s
    }

    func testGoldenVectors_encodeByteIdenticalToProtoc() throws {
        let cases = try Self.loadCases("encode")
        XCTAssertGreaterThanOrEqual(cases.count, 10)
        for c in cases {
            let encoded = c.type == "DialogEvent" ? Self.event(c.fields).serializedBytes() : Self.snapshot(c.fields).serializedBytes()
            XCTAssertEqual(encoded, c.bytes, "encode \(c.name)")
        }
    }

    func testGoldenVectors_decode() throws {
        for c in try Self.loadCases("encode") + Self.loadCases("decode") {
            if c.type == "DialogEvent" {
                XCTAssertEqual(try DialogEvent(serializedBytes: c.bytes), Self.event(c.fields), "decode \(c.name)")
            } else {
                XCTAssertEqual(try SessionSnapshot(serializedBytes: c.bytes), Self.snapshot(c.fields), "decode \(c.name)")
            }
        }
    }

    func testDecodeOnlyCasesPresent() throws {
        let names = try Self.loadCases("decode").map(\.name)
        XCTAssertTrue(names.contains("event_with_unknown_fields"))
        XCTAssertTrue(names.contains("event_reverse_field_order"))
    }

    /// identities (field 9) is covered by protoc's bytes, with several keys in sorted order,
    /// and a future message's unknown fields start after it.
    func testGoldenVectorsCoverIdentities() throws {
        let encode = try Self.loadCases("encode").filter { Self.event($0.fields).identities.count > 1 }
        XCTAssertGreaterThanOrEqual(encode.count, 2)
        let unknown = try XCTUnwrap(Self.loadCases("decode").first { $0.name == "event_with_unknown_fields" })
        XCTAssertFalse(Self.event(unknown.fields).identities.isEmpty)
    }

    func testTruncatingAnyGoldenVectorFailsCleanly() throws {
        for c in try Self.loadCases("encode") where c.bytes.count > 1 {
            for cut in 1..<min(c.bytes.count, 64) {
                // Every strict prefix either decodes (cut at a field boundary) or throws; never traps.
                _ = try? DialogEvent(serializedBytes: Array(c.bytes[0..<cut]))
                _ = try? SessionSnapshot(serializedBytes: Array(c.bytes[0..<cut]))
            }
        }
    }
}
