/// The messages of `proto/dialog.proto` and their hand-written binary codec.
///
/// Encoding matches `protoc`-generated code with deterministic serialization: fields in
/// field-number order, proto3 defaults omitted, map entries sorted by key bytes with both
/// key and value always written (as C++ and upb do). Decoding accepts any field order,
/// repeated occurrences (last one wins for singular fields, entries accumulate for maps),
/// and skips unknown fields.

/// One dialog event posted by a Cognigy flow.
public struct DialogEvent: Equatable, Sendable {
    public var conversationId: String = ""
    public var channel: String = ""
    public var intent: String = ""
    public var slots: [String: String] = [:]
    /// Event time in epoch seconds; 0 means "not given".
    public var timestamp: Int64 = 0
    public var userId: String = ""
    public var sessionId: String = ""
    public var eventId: String = ""
    /// Verified identifiers of the person (`phone`, `email`, a login …) by kind, used to
    /// find the conversation on a new channel (SPEC "Identity links"); never stored.
    public var identities: [String: String] = [:]

    public init(
        conversationId: String = "", channel: String = "", intent: String = "", slots: [String: String] = [:],
        timestamp: Int64 = 0, userId: String = "", sessionId: String = "", eventId: String = "",
        identities: [String: String] = [:]
    ) {
        self.conversationId = conversationId
        self.channel = channel
        self.intent = intent
        self.slots = slots
        self.timestamp = timestamp
        self.userId = userId
        self.sessionId = sessionId
        self.eventId = eventId
        self.identities = identities
    }
}

/// What the service knows of one channel of a conversation.
public struct ChannelState: Equatable, Sendable {
    public var userId: String = ""
    public var sessionId: String = ""
    /// Epoch seconds of the last event seen on the channel.
    public var lastSeen: Int64 = 0

    public init(userId: String = "", sessionId: String = "", lastSeen: Int64 = 0) {
        self.userId = userId
        self.sessionId = sessionId
        self.lastSeen = lastSeen
    }
}

/// One stored version of a conversation.
public struct SessionSnapshot: Equatable, Sendable {
    public var conversationId: String = ""
    public var sessionVersion: Int64 = 0
    public var channel: String = ""
    public var previousChannel: String = ""
    public var intent: String = ""
    public var slots: [String: String] = [:]
    public var channels: [String: ChannelState] = [:]
    /// Epoch seconds.
    public var eventTimestamp: Int64 = 0
    /// Epoch milliseconds.
    public var updatedAt: Int64 = 0
    /// Epoch seconds.
    public var expiresAt: Int64 = 0
    /// Ids of the most recent events applied, oldest first, as written before digests
    /// (`recentEventDigests`) replaced them: read from older snapshots, never written now.
    public var recentEventIds: [String] = []
    /// 64-bit digests of the ids of the most recent events applied, oldest first.
    public var recentEventDigests: [UInt64] = []

    public init() {}
}

// MARK: - Map helpers shared by both messages

private func stringMapSize(_ number: Int, _ map: [String: String]) -> Int {
    var size = 0
    for (key, value) in map {
        size += lengthDelimitedFieldSize(number, stringEntrySize(key, value))
    }
    return size
}

/// Map entry payload: key (1) and value (2), both always present.
@inline(__always)
private func stringEntrySize(_ key: String, _ value: String) -> Int {
    lengthDelimitedFieldSize(1, key.utf8.count) + lengthDelimitedFieldSize(2, value.utf8.count)
}

private func writeWireStringMap(_ writer: inout WireWriter, _ number: Int, _ map: [String: String]) {
    for key in sortedMapKeys(map) {
        let value = map[key]!
        writer.writeMessageHeader(number, size: stringEntrySize(key, value))
        writer.writeLengthDelimited(1, key.utf8)
        writer.writeLengthDelimited(2, value.utf8)
    }
}

/// Reads one `map<string, string>` entry.
private func readStringEntry(_ reader: inout WireReader, field: Int) throws(WireError) -> (String, String) {
    var entry = try reader.readSubmessage()
    var key = "", value = ""
    while let tag = try entry.nextTag() {
        switch (tag.number, tag.wireType) {
        case (1, .lengthDelimited): key = try entry.readString(field: field)
        case (2, .lengthDelimited): value = try entry.readString(field: field)
        default: try entry.skip(tag)
        }
    }
    return (key, value)
}

// MARK: - DialogEvent codec

extension DialogEvent {
    public func serializedSize() -> Int {
        stringFieldSize(1, conversationId) + stringFieldSize(2, channel) + stringFieldSize(3, intent)
            + stringMapSize(4, slots) + int64FieldSize(5, timestamp) + stringFieldSize(6, userId)
            + stringFieldSize(7, sessionId) + stringFieldSize(8, eventId) + stringMapSize(9, identities)
    }

    /// Deterministic binary encoding, byte-identical to protoc's.
    public func serializedBytes() -> [UInt8] {
        var writer = WireWriter(capacity: serializedSize())
        writer.writeString(1, conversationId)
        writer.writeString(2, channel)
        writer.writeString(3, intent)
        writeWireStringMap(&writer, 4, slots)
        writer.writeInt64(5, timestamp)
        writer.writeString(6, userId)
        writer.writeString(7, sessionId)
        writer.writeString(8, eventId)
        writeWireStringMap(&writer, 9, identities)
        return writer.bytes
    }

    public init(serializedBytes bytes: [UInt8]) throws(WireError) {
        self.init()
        var reader = WireReader(bytes)
        while let tag = try reader.nextTag() {
            switch (tag.number, tag.wireType) {
            case (1, .lengthDelimited): conversationId = try reader.readString(field: 1)
            case (2, .lengthDelimited): channel = try reader.readString(field: 2)
            case (3, .lengthDelimited): intent = try reader.readString(field: 3)
            case (4, .lengthDelimited):
                let (key, value) = try readStringEntry(&reader, field: 4)
                slots[key] = value
            case (5, .varint): timestamp = try reader.readInt64()
            case (6, .lengthDelimited): userId = try reader.readString(field: 6)
            case (7, .lengthDelimited): sessionId = try reader.readString(field: 7)
            case (8, .lengthDelimited): eventId = try reader.readString(field: 8)
            case (9, .lengthDelimited):
                let (key, value) = try readStringEntry(&reader, field: 9)
                identities[key] = value
            default: try reader.skip(tag)
            }
        }
    }
}

// MARK: - ChannelState codec

extension ChannelState {
    func serializedSize() -> Int {
        stringFieldSize(1, userId) + stringFieldSize(2, sessionId) + int64FieldSize(3, lastSeen)
    }

    func write(to writer: inout WireWriter) {
        writer.writeString(1, userId)
        writer.writeString(2, sessionId)
        writer.writeInt64(3, lastSeen)
    }

    init(reader: inout WireReader) throws(WireError) {
        self.init()
        while let tag = try reader.nextTag() {
            switch (tag.number, tag.wireType) {
            case (1, .lengthDelimited): userId = try reader.readString(field: 1)
            case (2, .lengthDelimited): sessionId = try reader.readString(field: 2)
            case (3, .varint): lastSeen = try reader.readInt64()
            default: try reader.skip(tag)
            }
        }
    }
}

// MARK: - SessionSnapshot codec

extension SessionSnapshot {
    private static func channelEntrySize(_ key: String, _ value: ChannelState) -> Int {
        lengthDelimitedFieldSize(1, key.utf8.count) + lengthDelimitedFieldSize(2, value.serializedSize())
    }

    public func serializedSize() -> Int {
        var size = stringFieldSize(1, conversationId) + int64FieldSize(2, sessionVersion)
            + stringFieldSize(3, channel) + stringFieldSize(4, previousChannel) + stringFieldSize(5, intent)
            + stringMapSize(6, slots)
        for (key, value) in channels {
            size += lengthDelimitedFieldSize(7, Self.channelEntrySize(key, value))
        }
        size += int64FieldSize(8, eventTimestamp) + int64FieldSize(9, updatedAt) + int64FieldSize(10, expiresAt)
        for id in recentEventIds {
            size += lengthDelimitedFieldSize(11, id.utf8.count)
        }
        return size + packedFixed64FieldSize(12, count: recentEventDigests.count)
    }

    /// Deterministic binary encoding, byte-identical to protoc's.
    public func serializedBytes() -> [UInt8] {
        var writer = WireWriter(capacity: serializedSize())
        writer.writeString(1, conversationId)
        writer.writeInt64(2, sessionVersion)
        writer.writeString(3, channel)
        writer.writeString(4, previousChannel)
        writer.writeString(5, intent)
        writeWireStringMap(&writer, 6, slots)
        for key in sortedMapKeys(channels) {
            let value = channels[key]!
            writer.writeMessageHeader(7, size: Self.channelEntrySize(key, value))
            writer.writeLengthDelimited(1, key.utf8)
            writer.writeMessageHeader(2, size: value.serializedSize())
            value.write(to: &writer)
        }
        writer.writeInt64(8, eventTimestamp)
        writer.writeInt64(9, updatedAt)
        writer.writeInt64(10, expiresAt)
        // repeated string: every element is written, empty ones included.
        for id in recentEventIds {
            writer.writeLengthDelimited(11, id.utf8)
        }
        writer.writePackedFixed64(12, recentEventDigests)
        return writer.bytes
    }

    public init(serializedBytes bytes: [UInt8]) throws(WireError) {
        self.init()
        var reader = WireReader(bytes)
        while let tag = try reader.nextTag() {
            switch (tag.number, tag.wireType) {
            case (1, .lengthDelimited): conversationId = try reader.readString(field: 1)
            case (2, .varint): sessionVersion = try reader.readInt64()
            case (3, .lengthDelimited): channel = try reader.readString(field: 3)
            case (4, .lengthDelimited): previousChannel = try reader.readString(field: 4)
            case (5, .lengthDelimited): intent = try reader.readString(field: 5)
            case (6, .lengthDelimited):
                let (key, value) = try readStringEntry(&reader, field: 6)
                slots[key] = value
            case (7, .lengthDelimited):
                var entry = try reader.readSubmessage()
                var key = ""
                var value = ChannelState()
                while let entryTag = try entry.nextTag() {
                    switch (entryTag.number, entryTag.wireType) {
                    case (1, .lengthDelimited): key = try entry.readString(field: 7)
                    case (2, .lengthDelimited):
                        var sub = try entry.readSubmessage()
                        value = try ChannelState(reader: &sub)
                    default: try entry.skip(entryTag)
                    }
                }
                channels[key] = value
            case (8, .varint): eventTimestamp = try reader.readInt64()
            case (9, .varint): updatedAt = try reader.readInt64()
            case (10, .varint): expiresAt = try reader.readInt64()
            case (11, .lengthDelimited): recentEventIds.append(try reader.readString(field: 11))
            // Parsers accept a repeated scalar packed or not (protobuf encoding spec).
            case (12, .lengthDelimited): recentEventDigests.append(contentsOf: try reader.readPackedFixed64())
            case (12, .fixed64): recentEventDigests.append(try reader.readFixed64())
            default: try reader.skip(tag)
            }
        }
    }
}
