#!/usr/bin/env bash
# One table: cognigy-session vs the Hummingbird peer vs the raw SQLite floor.
#   scripts/bench.sh [DURATION_S=10] [CONNECTIONS=32] [ROUNDS=3]
#
# Each round starts a fresh release build of ours (its default configuration, so
# SQLITE_SYNCHRONOUS=full, on a fresh database) and runs the shared harness
# ../shared/bench/http_load.sh (wrk, 1 thread: GET /health, then POST /webhook/dialog with a
# unique eventId per request over 1000 conversations); then the same for the peer when its
# binary exists (PEER_BIN, default ../shared/peers/hummingbird-webhook/.build/release/hb-webhook;
# never built or required by this project); then ../shared/bench/sqlite_limit.py. Runs
# interleave so both services see the same machine; the table shows medians over the
# rounds and the ratios. The machine is shared: compare ratios, not absolute numbers.
# Raw RESULT lines go to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
ensure_build_deps
ensure_packages wrk curl
DURATION="${1:-10}" CONNECTIONS="${2:-32}" ROUNDS="${3:-3}"
BENCH_DIR="${BENCH_DIR:-$ROOT/../shared/bench}"
PEER_BIN="${PEER_BIN:-$ROOT/../shared/peers/hummingbird-webhook/.build/release/hb-webhook}"
[[ -r "$BENCH_DIR/http_load.sh" ]] || { echo "no harness at $BENCH_DIR" >&2; exit 2; }
swift build -c release --product cognigy-session >&2
RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT

run_service() { # LABEL COMMAND...: starts it on a free port with a fresh database, loads it
  local label="$1"; shift
  local data port pid
  data="$(mktemp -d)"; port="$(free_port)"
  env HOST=127.0.0.1 PORT="$port" SQLITE_PATH="$data/sessions.sqlite" OUTBOX_PATH="$data/outbox.sqlite" \
    LOG_LEVEL=warn ACCESS_LOG=false "$@" 2>"$data/server.log" & pid=$!
  if wait_http "http://127.0.0.1:$port/health" -f; then
    QUIET_CHECK=0 bash "$BENCH_DIR/http_load.sh" "http://127.0.0.1:$port" "$DURATION" "$CONNECTIONS" 2>/dev/null \
      | sed "s/^RESULT /RESULT service=$label /" | tee -a "$RESULTS" >&2 || echo "load of $label failed" >&2
  else
    echo "$label did not start:" >&2; cat "$data/server.log" >&2
  fi
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  run_service ours "$ROOT/.build/release/cognigy-session"
  if [[ -x "$PEER_BIN" ]]; then run_service peer "$PEER_BIN"; fi
  python3 "$BENCH_DIR/sqlite_limit.py" | sed 's/^RESULT /RESULT service=sqlite /' | tee -a "$RESULTS" >&2
done

python3 - "$RESULTS" "$DURATION" "$CONNECTIONS" "$ROUNDS" <<'PY'
import statistics, sys
path, duration, connections, rounds = sys.argv[1:]
runs = {}
for line in open(path):
    fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    key = (fields.pop("service"), fields.pop("name"))
    for k, v in fields.items():
        runs.setdefault(key + (k,), []).append(float(v))
med = {k: statistics.median(v) for k, v in runs.items()}
def get(service, name, metric):
    return med.get((service, name, metric))
has_peer = any(k[0] == "peer" for k in med)
floor = get("sqlite", "sqlite_limit", "rows_per_s")
print(f"wrk 1 thread, {connections} connections, {duration} s, median of {rounds} interleaved rounds")
print("| metric | ours | peer | ours / peer |")
print("|---|---|---|---|")
for name, label in (("health", "GET /health"), ("webhook", "POST /webhook/dialog")):
    for metric, unit, higher_is_better in (("rps", "rps", True), ("p50_ms", "p50 ms", False), ("p99_ms", "p99 ms", False)):
        ours, peer = get("ours", name, metric), get("peer", name, metric)
        ratio = f"{ours / peer:.2f}x" if ours and peer else "—"
        fmt = (lambda v: f"{v:,.0f}") if metric == "rps" else (lambda v: f"{v:.2f}")
        print(f"| {label} {unit} | {fmt(ours) if ours is not None else '—'} | "
              f"{fmt(peer) if peer is not None else ('—' if has_peer else 'not built')} | {ratio} |")
if floor:
    ours = get("ours", "webhook", "rps")
    peer = get("peer", "webhook", "rps")
    print(f"| raw SQLite floor (sqlite_limit.py) | {floor:,.0f} rows/s | | ours {100 * ours / floor:.0f}% of it"
          + (f", peer {100 * peer / floor:.0f}%" if peer else "") + " |")
PY
