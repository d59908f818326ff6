#!/usr/bin/env bash
# What finding the conversation costs per event: the webhook under three kinds of events
# (scripts/bench/webhook_links.lua: conversationId only; conversationId + userId; no
# conversationId, a phone identity + userId), interleaved on one service, each with the
# store operations per event read from the service's own metrics.
#   scripts/bench_links.sh [DURATION_S=5] [CONNECTIONS=1] [ROUNDS=2]
# One connection by default: p50 is then the time of one event, without queueing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
ensure_build_deps
ensure_packages wrk curl
swift build -c release --product cognigy-session >&2
DATA=$(mktemp -d); PORT=$(free_port)
HOST=127.0.0.1 PORT="$PORT" SQLITE_PATH="$DATA/s.sqlite" OUTBOX_PATH="$DATA/o.sqlite" LOG_LEVEL=warn ACCESS_LOG=false \
  "${STORE_ENV[@]:-env}" "$ROOT/.build/release/cognigy-session" 2>"$DATA/log" & PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
wait_http "http://127.0.0.1:$PORT/health" -f
export WEBHOOK_IDS="${WEBHOOK_IDS:-200}"
ops() { # the store operations and webhook requests counted so far, as "op=count ..." lines
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '
    /^cognigy_session_store_operation_duration_seconds_count\{/ { match($0, /operation="[^"]*"/); op = substr($0, RSTART + 11, RLENGTH - 12); n[op] += $NF }
    /^cognigy_session_http_requests_total\{route="\/webhook\/dialog"/ { n["events"] += $NF }
    END { for (op in n) print op, n[op] }'
}
for mode in id id_user identity; do  # warm-up: every person's first event (links created)
  LINK_MODE=$mode wrk -t1 -c4 -d2s -s scripts/bench/webhook_links.lua "http://127.0.0.1:$PORT/webhook/dialog" >/dev/null
done
for round in $(seq 1 "${3:-2}"); do
  for mode in id id_user identity; do
    before=$(ops)
    line=$(LINK_MODE=$mode wrk -t1 -c"${2:-1}" -d"${1:-5}s" -s scripts/bench/webhook_links.lua \
      "http://127.0.0.1:$PORT/webhook/dialog" | grep '^RESULT')
    after=$(ops)
    per_event=$(python3 - "$before" "$after" <<'PY'
import sys
def parse(text):
    return {k: float(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}
b, a = parse(sys.argv[1]), parse(sys.argv[2])
events = a.get("events", 0) - b.get("events", 0)
print(" ".join(f"{op}={(a[op] - b.get(op, 0)) / events:.2f}" for op in sorted(a) if op != "events" and a[op] > b.get(op, 0)))
PY
)
    echo "$line round=$round store_ops_per_event: $per_event"
  done
done
