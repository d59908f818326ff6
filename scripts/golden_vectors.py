"""Prints golden protobuf vectors as JSON (run by scripts/gen-golden-vectors.sh).

Encode vectors come from the real protoc binary: `protoc --encode=... --deterministic_output`
(C++), fed the text format of each case. Google's Python runtime (upb) is used to build the
messages and as a second opinion: its deterministic output orders a map key that is a strict
prefix of another key *after* it ("ab" before "a"), where protoc's C++ orders plain bytewise
("a" before "ab"). We follow protoc; the upb bytes are kept as decode-only vectors.

Each case: the message type, its fields in proto field names (int64 as JSON numbers), and
the hex of protoc's deterministic serialization. "encode" cases must be produced
byte-for-byte by the Swift codec; "decode" cases (unknown fields, other field orders) must
decode to the given fields.
"""
import json
import os
import subprocess
import sys

from google.protobuf import json_format, text_format
import google.protobuf
import dialog_pb2
import future_pb2

EVENT = dialog_pb2.DialogEvent
SNAP = dialog_pb2.SessionSnapshot

example = {"conversation_id": "conv-88a2c1f9", "channel": "web-chat", "intent": "book_flight",
           "slots": {"origin": "JFK", "destination": "LHR", "date": "2024-06-15"}, "timestamp": 1718409600}

encode_cases = [
    ("event_empty", EVENT, {}),
    ("event_example", EVENT, example),
    ("event_all_fields", EVENT, dict(example, user_id="user-1", session_id="sess-42", event_id="input-7")),
    ("event_negative_timestamp", EVENT, {"conversation_id": "c", "channel": "x", "timestamp": -1}),
    ("event_max_timestamp", EVENT, {"conversation_id": "c", "channel": "x", "timestamp": 9223372036854775807}),
    ("event_min_timestamp", EVENT, {"conversation_id": "c", "channel": "x", "timestamp": -9223372036854775808}),
    ("event_empty_slot_key_and_value", EVENT, {"conversation_id": "c", "channel": "x", "slots": {"": "", "k": ""}}),
    ("event_prefix_keys", EVENT, {"conversation_id": "c", "channel": "x",
        "slots": {"ab": "1", "a": "2", "": "3", "b": "4", "abc": "5", "a\u0000": "6"}}),
    ("event_unicode_key_order", EVENT, {"conversation_id": "ü-conv", "channel": "whatsapp",
        "slots": {"z": "1", "a": "2", "é": "3", "e": "4", "Z": "5", "日本": "6", "\U0001F600": "7", "ａ": "8"}}),
    # identities (field 9): several keys, so the map's sorted deterministic order is checked,
    # including a key that is a prefix of another and keys outside ASCII.
    ("event_identities", EVENT, dict(example, user_id="web-user-1", event_id="in-1",
        identities={"phone": "4917012345678", "email": "anna@example.com", "crm_id": "C-1001",
                    "login": "anna", "customer_no": "007"})),
    ("event_identities_prefix_keys", EVENT, {"channel": "whatsapp",
        "identities": {"e": "1", "email": "a@b.c", "": "", "émail": "x", "em": "2"}}),
    ("event_identities_only", EVENT, {"channel": "voice", "identities": {"phone": "491701234567"}}),
    ("event_long_strings", EVENT, {"conversation_id": "c" * 300, "channel": "voice",
        "intent": "i" * 130, "slots": {"note": "n" * 20000}}),
    ("snapshot_empty", SNAP, {}),
    ("snapshot_full", SNAP, {
        "conversation_id": "conv-88a2c1f9", "session_version": 3, "channel": "whatsapp",
        "previous_channel": "web-chat", "intent": "book_flight",
        "slots": {"origin": "JFK", "destination": "LHR", "date": "2024-06-15", "count": "2"},
        "channels": {"web-chat": {"user_id": "u1", "session_id": "s1", "last_seen": 1718409600},
                     "whatsapp": {"user_id": "u1", "session_id": "s2", "last_seen": 1718409700},
                     "voice": {}},
        "event_timestamp": 1718409700, "updated_at": 1718409700123, "expires_at": 1719014500,
        "recent_event_ids": ["e1", "", "h:0123456789abcdef"],
        "recent_event_digests": [0x8b5cc4df7eec7d32, 0, 1, 18446744073709551615]}),
    ("snapshot_digests_only", SNAP, {"conversation_id": "c", "session_version": 2, "channel": "voice",
        "recent_event_digests": [0xe3b0c44298fc1c14]}),
    ("snapshot_big_version", SNAP, {"conversation_id": "c", "session_version": 300000000000,
        "channel": "x", "updated_at": 1, "expires_at": -5}),
]

PROTO_DIR = os.environ["PROTO_DIR"]


def protoc_encode(msg):
    """protoc --encode with --deterministic_output: the C++ serializer of the real protoc."""
    text = text_format.MessageToString(msg, as_utf8=True).encode("utf-8")
    run = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + PROTO_DIR,
                          "--encode=cognigy.session.v1." + type(msg).__name__, "--deterministic_output",
                          os.path.join(PROTO_DIR, "dialog.proto")], input=text, capture_output=True, check=True)
    return run.stdout


out = {"generator": "protoc --encode --deterministic_output (grpcio-tools)",
       "protobuf_version": google.protobuf.__version__, "encode": [], "decode": []}
for name, cls, fields in encode_cases:
    msg = json_format.ParseDict(fields, cls(), ignore_unknown_fields=False)
    data = protoc_encode(msg)
    check = cls()
    check.ParseFromString(data)
    assert check == msg, name
    out["encode"].append({"name": name, "type": cls.__name__, "fields": fields, "hex": data.hex()})
    upb = msg.SerializeToString(deterministic=True)
    if upb != data:
        out["decode"].append({"name": name + "_upb_order", "type": cls.__name__, "fields": fields, "hex": upb.hex()})

# Decode-only cases.
known = dict(example, user_id="u", identities={"phone": "4917012345678", "email": "a@b.c"})
v2 = json_format.ParseDict(dict(known, score=0.5, flags=7, nested={"note": "x", "n": -3}, numbers=[1, 300, -2],
                                big=-9, level=18446744073709551615, deltas=[-1, 64], blob="AAEC"),
                           future_pb2.DialogEventV2())
out["decode"].append({"name": "event_with_unknown_fields", "type": "DialogEvent",
                      "fields": known, "hex": v2.SerializeToString(deterministic=True).hex()})

# recent_event_digests written unpacked (one fixed64 field per value): proto3 parsers must
# accept a packed field in either form.
unpacked = json_format.ParseDict({"conversation_id": "c", "recent_event_digests": [7, 18446744073709551615]},
                                 future_pb2.SnapshotUnpacked()).SerializeToString(deterministic=True)
check = SNAP()
check.ParseFromString(unpacked)
assert list(check.recent_event_digests) == [7, 18446744073709551615]
out["decode"].append({"name": "snapshot_digests_unpacked", "type": "SessionSnapshot",
                      "fields": {"conversation_id": "c", "recent_event_digests": [7, 18446744073709551615]},
                      "hex": unpacked.hex()})

# Fields in reverse order: concatenating single-field serializations is valid protobuf
# (a parser merges them); protoc's own parser must accept it, and so must ours.
parts = []
for key in reversed(list(example.keys())):
    parts.append(json_format.ParseDict({key: example[key]}, EVENT()).SerializeToString(deterministic=True))
reordered = b"".join(parts)
check = EVENT()
check.ParseFromString(reordered)
assert json_format.MessageToDict(check, preserving_proto_field_name=True)["slots"] == example["slots"]
out["decode"].append({"name": "event_reverse_field_order", "type": "DialogEvent", "fields": example,
                      "hex": reordered.hex()})

# A singular field repeated: the last one wins.
twice = (json_format.ParseDict({"channel": "web-chat"}, EVENT()).SerializeToString()
         + json_format.ParseDict({"conversation_id": "c", "channel": "voice"}, EVENT()).SerializeToString())
check = EVENT()
check.ParseFromString(twice)
assert check.channel == "voice"
out["decode"].append({"name": "event_last_value_wins", "type": "DialogEvent",
                      "fields": {"conversation_id": "c", "channel": "voice"}, "hex": twice.hex()})

json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
sys.stdout.write("\n")
