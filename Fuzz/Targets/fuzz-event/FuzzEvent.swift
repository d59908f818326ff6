import DialogWire
import FuzzSupport

/// The webhook's three body mappings to DialogEvent (JSON, form, protobuf), each tried on
/// every input.
///
/// Invariants: any event that decodes, from any format, round-trips through its protobuf
/// encoding to an equal event; written back as proto3 JSON and as a form body it decodes
/// to an equal event again; and in Cognigy input mode (SPEC "POST /webhook/dialog") it
/// decodes equal when its fields come from an `input` object (refused when one of them holds a
/// control character), and the top level wins over
/// an `input` that says something else, empty top-level fields taking the input's values.
/// Any JSON value put in `input.slots` becomes exactly `CognigySlot.normalise` of it.
enum FuzzEvent {
    static func run(_ input: [UInt8]) {
        if let event = try? DialogEvent(jsonBytes: input) { check(event, "json", input) }
        if let event = try? DialogEvent(formBytes: input) { check(event, "form", input) }
        if let event = try? DialogEvent(protobufBytes: input) { check(event, "protobuf", input) }
        checkSlotNormalisation(input)
    }

    static func check(_ event: DialogEvent, _ format: String, _ input: [UInt8]) {
        let wire = event.serializedBytes()
        precondition(wire.count == event.serializedSize(), "\(format): size mismatch")
        let fromWire: DialogEvent
        do { fromWire = try DialogEvent(protobufBytes: wire) } catch {
            fatalError("\(format): protobuf encoding does not decode (\(error)): \(show(input))")
        }
        precondition(fromWire == event, "\(format): protobuf round trip differs for \(show(input)): \(event) vs \(fromWire)")

        expect(event, fromJSON: jsonBody(event), "\(format) -> JSON", input)
        expect(event, fromJSON: cognigyInputBody(top: event, input: DialogEvent()), "\(format) -> top level beside an empty input", input)
        let fromInput = cognigyInputBody(top: DialogEvent(conversationId: event.conversationId,
            timestamp: event.timestamp, identities: event.identities), input: event)
        if [event.channel, event.intent, event.userId, event.sessionId, event.eventId].contains(where: hasControlCharacter) {
            // input's ids are refused with a control character (the top level's are the service's to refuse).
            do {
                _ = try DialogEvent(jsonBytes: fromInput)
                fatalError("\(format): an input id with a control character is accepted: \(show(input))")
            } catch {
                guard case .wrongType(let field, _) = error, field.hasPrefix("input.") else {
                    fatalError("\(format): an input id with a control character fails as \(error): \(show(input))")
                }
            }
        } else {
            expect(event, fromJSON: fromInput, "\(format) -> Cognigy input", input)
        }

        // The top level wins; what it leaves empty (and slot keys it does not set) comes from input.
        let other = DialogEvent(
            channel: "input-channel", intent: "input-intent", slots: ["input-slot": "i", "k": "input-value"],
            userId: "input-user", sessionId: "input-session", eventId: "input-id")
        var merged = event
        for path in [\DialogEvent.channel, \.intent, \.userId, \.sessionId, \.eventId] where merged[keyPath: path].isEmpty {
            merged[keyPath: path] = other[keyPath: path]
        }
        merged.slots.merge(other.slots) { top, _ in top }
        expect(merged, fromJSON: cognigyInputBody(top: event, input: other), "\(format) -> top level over input", input)

        let form = formBody(event)
        do {
            let fromForm = try DialogEvent(formBytes: form)
            precondition(fromForm == event, "\(format): form round trip differs for \(show(input)): \(event) vs \(fromForm)")
        } catch {
            fatalError("\(format): written form does not decode (\(error)): \(show(input)) -> \(show(form))")
        }
    }

    static func hasControlCharacter(_ s: String) -> Bool { s.utf8.contains { $0 < 0x20 || $0 == 0x7F } }

    static func expect(_ event: DialogEvent, fromJSON body: [UInt8], _ what: String, _ input: [UInt8]) {
        do {
            let decoded = try DialogEvent(jsonBytes: body)
            precondition(decoded == event, "\(what) differs for \(show(input)): \(event) vs \(decoded)")
        } catch {
            fatalError("\(what): written JSON does not decode (\(error)): \(show(input)) -> \(show(body))")
        }
    }

    /// An input that is one JSON value, put in `input.slots`, is stored as its normalisation.
    static func checkSlotNormalisation(_ input: [UInt8]) {
        // Three levels of nesting are added around it.
        guard let value = try? JSONParser.parse(input, maxDepth: JSONParser.defaultMaxDepth - 3) else { return }
        var w = JSONWriter()
        w.beginObject(); w.key("input"); w.beginObject(); w.key("slots"); w.beginObject()
        w.key("k"); w.value(value)
        w.endObject(); w.endObject(); w.endObject()
        let event: DialogEvent
        do { event = try DialogEvent(jsonBytes: w.bytes) } catch {
            fatalError("a JSON slot value in input mode is rejected (\(error)): \(show(input))")
        }
        precondition(event.slots["k"] == CognigySlot.normalise(value), "input.slots value differs for \(show(input))")
        precondition(event.slots.count == (event.slots["k"] == nil ? 0 : 1), "input.slots gained keys for \(show(input))")
    }

    /// The event as a Cognigy HTTP Request node body: `top`'s fields at the top level (empty
    /// ones left out) and `input`'s under `input` with Cognigy's names.
    static func cognigyInputBody(top: DialogEvent, input: DialogEvent) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        writeFields(top, to: &w, eventIdName: "eventId", omitEmpty: true)
        w.key("input")
        w.beginObject()
        w.key("text"); w.value("unknown fields of input are ignored")
        writeFields(DialogEvent(channel: input.channel, intent: input.intent, slots: input.slots, userId: input.userId,
            sessionId: input.sessionId, eventId: input.eventId), to: &w, eventIdName: "inputId", omitEmpty: false)
        w.endObject()
        w.endObject()
        return w.bytes
    }

    /// The event as proto3 JSON (lowerCamel names, int64 as a number).
    static func jsonBody(_ e: DialogEvent) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        writeFields(e, to: &w, eventIdName: "eventId", omitEmpty: false)
        w.endObject()
        return w.bytes
    }

    /// The event's fields as members of the object `w` is writing; `conversationId`,
    /// `timestamp` and `identities` only where the event has them when `omitEmpty`.
    static func writeFields(_ e: DialogEvent, to w: inout JSONWriter, eventIdName: String, omitEmpty: Bool) {
        func string(_ name: String, _ value: String) {
            if !(omitEmpty && value.isEmpty) { w.key(name); w.value(value) }
        }
        string("conversationId", e.conversationId)
        string("channel", e.channel)
        string("intent", e.intent)
        if !(omitEmpty && e.slots.isEmpty) { w.key("slots"); w.raw(jsonObject(e.slots)) }
        if !(omitEmpty && e.timestamp == 0) { w.key("timestamp"); w.value(e.timestamp) }
        string("userId", e.userId)
        string("sessionId", e.sessionId)
        string(eventIdName, e.eventId)
        if !(omitEmpty && e.identities.isEmpty) { w.key("identities"); w.raw(jsonObject(e.identities)) }
    }

    /// A string map as a JSON object, keys sorted.
    static func jsonObject(_ map: [String: String]) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        for key in map.keys.sorted() { w.key(key); w.value(map[key]!) }
        w.endObject()
        return w.bytes
    }

    /// The event as an x-www-form-urlencoded body (slots as a JSON object string).
    static func formBody(_ e: DialogEvent) -> [UInt8] {
        var out: [UInt8] = []
        func field(_ name: String, _ value: [UInt8]) {
            if !out.isEmpty { out.append(UInt8(ascii: "&")) }
            out += Array(name.utf8)
            out.append(UInt8(ascii: "="))
            let hex = Array("0123456789ABCDEF".utf8)
            for b in value {
                switch b {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
                    out.append(b)
                default:
                    out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0xF)]]
                }
            }
        }
        field("conversationId", Array(e.conversationId.utf8))
        field("channel", Array(e.channel.utf8))
        field("intent", Array(e.intent.utf8))
        if !e.slots.isEmpty { field("slots", jsonObject(e.slots)) }
        if e.timestamp != 0 { field("timestamp", Array(String(e.timestamp).utf8)) }
        field("userId", Array(e.userId.utf8))
        field("sessionId", Array(e.sessionId.utf8))
        field("eventId", Array(e.eventId.utf8))
        if !e.identities.isEmpty { field("identities", jsonObject(e.identities)) }
        return out
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzEvent.run(fuzzInput(data, size))
    return 0
}
