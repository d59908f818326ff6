import DialogWire
import FuzzSupport

/// The webhook's three body mappings to DialogEvent (JSON, form, protobuf), each tried on
/// every input.
///
/// Invariants: any event that decodes, from any format, round-trips through its protobuf
/// encoding to an equal event; and written back as proto3 JSON and as a form body it
/// decodes to an equal event again.
enum FuzzEvent {
    static func run(_ input: [UInt8]) {
        if let event = try? DialogEvent(jsonBytes: input) { check(event, "json", input) }
        if let event = try? DialogEvent(formBytes: input) { check(event, "form", input) }
        if let event = try? DialogEvent(protobufBytes: input) { check(event, "protobuf", input) }
    }

    static func check(_ event: DialogEvent, _ format: String, _ input: [UInt8]) {
        let wire = event.serializedBytes()
        precondition(wire.count == event.serializedSize(), "\(format): size mismatch")
        let fromWire: DialogEvent
        do { fromWire = try DialogEvent(protobufBytes: wire) } catch {
            fatalError("\(format): protobuf encoding does not decode (\(error)): \(show(input))")
        }
        precondition(fromWire == event, "\(format): protobuf round trip differs for \(show(input)): \(event) vs \(fromWire)")

        let json = jsonBody(event)
        do {
            let fromJSON = try DialogEvent(jsonBytes: json)
            precondition(fromJSON == event, "\(format): JSON round trip differs for \(show(input)): \(event) vs \(fromJSON)")
        } catch {
            fatalError("\(format): written JSON does not decode (\(error)): \(show(input)) -> \(show(json))")
        }

        let form = formBody(event)
        do {
            let fromForm = try DialogEvent(formBytes: form)
            precondition(fromForm == event, "\(format): form round trip differs for \(show(input)): \(event) vs \(fromForm)")
        } catch {
            fatalError("\(format): written form does not decode (\(error)): \(show(input)) -> \(show(form))")
        }
    }

    /// The event as proto3 JSON (lowerCamel names, int64 as a number).
    static func jsonBody(_ e: DialogEvent) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("conversationId"); w.value(e.conversationId)
        w.key("channel"); w.value(e.channel)
        w.key("intent"); w.value(e.intent)
        w.key("slots")
        w.beginObject()
        for key in e.slots.keys.sorted() { w.key(key); w.value(e.slots[key]!) }
        w.endObject()
        w.key("timestamp"); w.value(e.timestamp)
        w.key("userId"); w.value(e.userId)
        w.key("sessionId"); w.value(e.sessionId)
        w.key("eventId"); w.value(e.eventId)
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
        if !e.slots.isEmpty {
            var w = JSONWriter()
            w.beginObject()
            for key in e.slots.keys.sorted() { w.key(key); w.value(e.slots[key]!) }
            w.endObject()
            field("slots", w.bytes)
        }
        if e.timestamp != 0 { field("timestamp", Array(String(e.timestamp).utf8)) }
        field("userId", Array(e.userId.utf8))
        field("sessionId", Array(e.sessionId.utf8))
        field("eventId", Array(e.eventId.utf8))
        return out
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzEvent.run(fuzzInput(data, size))
    return 0
}
