"""schemathesis hooks for scripts/openapi_test.sh (loaded through SCHEMATHESIS_HOOKS).

schemathesis cannot derive a protobuf body from `type: string, format: binary`, so it
never sent `application/x-protobuf` to the webhook. This registers a strategy that draws a
DialogEvent the way a protoc-generated client would write it: Google's protobuf runtime
serialises the message (module generated from proto/dialog.proto by scripts/test.sh into
CHECK_PYTHONPATH), with hypothesis choosing every field within the document's limits.
"""
import os
import sys

sys.path.insert(0, os.environ["CHECK_PYTHONPATH"])

import dialog_pb2  # noqa: E402  (generated; path set above)
import schemathesis  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

MAX_ID = 512
# SPEC: ids hold no control characters (U+0000-U+001F, U+007F), as the document's pattern says.
ID_ALPHABET = st.characters(blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in range(0x20)] + ["\x7f"])
ids = st.text(ID_ALPHABET, min_size=1, max_size=MAX_ID)
optional_ids = st.text(ID_ALPHABET, max_size=MAX_ID)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def dialog_event(draw):
    event = dialog_pb2.DialogEvent(
        # Random ids only: a fixed id shared across test cases would be re-created under
        # the stateful phase's "deleted stays deleted" check (use_after_free).
        conversation_id=draw(ids),
        channel=draw(st.one_of(ids, st.sampled_from(["web-chat", "whatsapp", "voice"]))),
        intent=draw(optional_ids),
        timestamp=draw(st.one_of(st.just(0), INT64)),
        user_id=draw(optional_ids),
        session_id=draw(optional_ids),
        event_id=draw(optional_ids),
    )
    for key, value in draw(st.dictionaries(st.text(max_size=40), st.text(max_size=200), max_size=8)).items():
        event.slots[key] = value
    # identities (field 9): valid ones only (an invalid phone or e-mail address is a 400),
    # any subset, in any order (the codec must not care).
    valid = {"email": st.just(" Anna.Schmidt@Example.com"), "phone": st.sampled_from(["+49 170 1234567", "0049 (170) 123-4567"]),
             "crm_id": optional_ids, "login": ids}
    for kind in draw(st.lists(st.sampled_from(sorted(valid)), unique=True, max_size=len(valid))):
        event.identities[kind] = draw(valid[kind])
    return event.SerializeToString(deterministic=True)


schemathesis.openapi.media_type(
    "application/x-protobuf", dialog_event(), aliases=["application/protobuf", "application/vnd.google.protobuf"]
)
