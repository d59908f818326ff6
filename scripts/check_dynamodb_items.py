"""Reads what cognigy-session stored in DynamoDB with boto3 and decodes `Snapshot` with
protoc-generated code (dialog_pb2 on PYTHONPATH). Used by the Swift test suite.

Usage: check_dynamodb_items.py ENDPOINT TABLE CONVERSATION_ID
Prints one JSON object per item: attribute types, and the decoded snapshot's fields.
"""
import json
import sys

import os

import boto3
import dialog_pb2

endpoint, table, conversation = sys.argv[1:4]
# Signed like the Swift client under test, session token included when the suite runs with
# one (scripts/test.sh's SigV4-verifying proxy checks it).
client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test",
                      aws_session_token=os.environ.get("MOTO_SESSION_TOKEN") or None)
answer = client.query(TableName=table, KeyConditionExpression="ConversationId = :c",
                      ExpressionAttributeValues={":c": {"S": conversation}}, ConsistentRead=True)
for item in answer["Items"]:
    snap = dialog_pb2.SessionSnapshot()
    snap.ParseFromString(item["Snapshot"]["B"])
    print(json.dumps({
        "types": {k: next(iter(v)) for k, v in sorted(item.items())},
        "slotTypes": sorted({next(iter(v)) for v in item["Slots"]["M"].values()}),
        "version": int(item["SessionVersion"]["N"]),
        "snapshot": {"conversation_id": snap.conversation_id, "session_version": snap.session_version,
                     "channel": snap.channel, "previous_channel": snap.previous_channel, "intent": snap.intent,
                     "slots": dict(snap.slots), "expires_at": snap.expires_at,
                     "channels": {k: {"user_id": v.user_id, "session_id": v.session_id} for k, v in snap.channels.items()},
                     "recent_event_ids": list(snap.recent_event_ids),
                     "recent_event_digests": [f"{d:016x}" for d in snap.recent_event_digests]},
        "expiresAt": int(item["ExpiresAt"]["N"]),
    }, sort_keys=True))
