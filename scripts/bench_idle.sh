#!/usr/bin/env bash
# Connections at scale (issue 13, goal 4): what 10,000 idle keep-alive connections cost.
#   scripts/bench_idle.sh [IDLE=10000] [DURATION_S=10]
#   BIN=path/to/cognigy-session (default: the release build; not rebuilt when BIN is given)
#
# Starts the service on a fresh database (MAX_CONNECTIONS=IDLE+1000), then:
#   1. RSS and thread count at rest;
#   2. a normal client's latency unloaded: wrk -t1 -c8 on GET /health and on the webhook
#      (../shared/bench/webhook.lua);
#   3. opens IDLE keep-alive connections from one Python process (each sends one
#      GET /health, reads the answer, and stays open), then RSS and thread count;
#   4. the same wrk runs while the IDLE connections are held;
#   5. checks the idle connections are still open (the server kept them);
#   6. closes them and runs the same wrk runs again (the webhook gets slower as the
#      database grows, so the held runs sit between two unloaded ones).
# Prints RESULT lines (key=value) and a summary. RSS is VmRSS from /proc/PID/status.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
IDLE="${1:-10000}" DURATION="${2:-10}"
BENCH_DIR="${BENCH_DIR:-$ROOT/../shared/bench}"
if [[ -z "${BIN:-}" ]]; then
  swift build -c release --product cognigy-session >&2
  BIN="$ROOT/.build/release/cognigy-session"
fi
# 10k sockets on each side: raise the soft limit as far as the hard one allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(( $(ulimit -n) > IDLE + 100 )) || { echo "ulimit -n $(ulimit -n) is too low for $IDLE connections" >&2; exit 2; }

data="$(mktemp -d)"; port="$(free_port)"
client_pid="" server_pid=""
cleanup() {
  [[ -n "$client_pid" ]] && kill "$client_pid" 2>/dev/null || true
  [[ -n "$server_pid" ]] && { kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; }
  rm -rf "$data"
}
trap cleanup EXIT
env HOST=127.0.0.1 PORT="$port" SQLITE_PATH="$data/sessions.sqlite" OUTBOX_PATH="$data/outbox.sqlite" \
  MAX_CONNECTIONS=$((IDLE + 1000)) LOG_LEVEL=warn ACCESS_LOG=false "$BIN" 2>"$data/server.log" & server_pid=$!
wait_http "http://127.0.0.1:$port/health" -f || { cat "$data/server.log" >&2; exit 1; }
url="http://127.0.0.1:$port"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$server_pid/status"; }
# p99 in ms from wrk --latency's distribution ("99%  1.23ms").
p99_ms() {
  awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; print v }'
}
load() { # LABEL: wrk on /health and the webhook, 8 connections
  local out
  out="$(wrk -t1 -c8 -d"${DURATION}s" --latency "$url/health")"
  echo "RESULT phase=$1 route=health rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out") p99_ms=$(p99_ms <<<"$out")"
  out="$(wrk -t1 -c8 -d"${DURATION}s" --latency -s "$BENCH_DIR/webhook.lua" "$url/webhook/dialog")"
  echo "RESULT phase=$1 route=webhook rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out") p99_ms=$(p99_ms <<<"$out")"
}

sleep 1
echo "RESULT phase=idle rss_kb=$(rss_kb) threads=$(threads)"
load unloaded
echo "RESULT phase=after_load rss_kb=$(rss_kb) threads=$(threads)"

# The idle clients: connect in batches (the listen backlog is finite), one request each,
# then hold. Writes "ready N" to the ready file, then sleeps until killed; on SIGUSR1 it
# reports how many of its connections the server has closed.
python3 - "$port" "$IDLE" "$data/ready" <<'PY' &
import select, signal, socket, sys, time
port, count, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks, failed = [], 0
request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
for start in range(0, count, 200):
    batch = []
    for _ in range(min(200, count - start)):
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port)); s.sendall(request); batch.append(s)
        except OSError:
            failed += 1; s.close()
    for s in batch:
        data = b""
        s.settimeout(30)
        try:
            while b"\r\n\r\n" not in data or not data.endswith(b'"ok"}'):
                chunk = s.recv(4096)
                if not chunk: break
                data += chunk
        except OSError:
            pass
        if data.startswith(b"HTTP/1.1 200") and b"Connection: close" not in data:
            socks.append(s)
        else:
            failed += 1; s.close()
def report(*_):
    r, _, _ = select.select(socks[:1000], [], [], 0)  # readable now = closed (EOF)
    closed = sum(1 for s in r if s.recv(1) == b"")
    with open(ready + ".check", "w") as f: f.write(f"closed_of_first_1000 {closed}\n")
signal.signal(signal.SIGUSR1, report)
with open(ready, "w") as f: f.write(f"ready {len(socks)} failed {failed}\n")
while True: time.sleep(60)
PY
client_pid=$!
for _ in $(seq 1 600); do [[ -s "$data/ready" ]] && break; sleep 0.5; done
[[ -s "$data/ready" ]] || { echo "the idle client never finished connecting" >&2; exit 1; }
sleep 2
echo "RESULT phase=held $(sed 's/^ready /connections=/; s/ failed / failed=/' "$data/ready") rss_kb=$(rss_kb) threads=$(threads)"
load held
echo "RESULT phase=held_after_load rss_kb=$(rss_kb) threads=$(threads)"
kill -USR1 "$client_pid"; sleep 1
echo "RESULT phase=held_check $(sed 's/ /=/' "$data/ready.check" 2>/dev/null || echo unknown)"
kill "$client_pid" 2>/dev/null || true; wait "$client_pid" 2>/dev/null || true; client_pid=""
sleep 2
echo "RESULT phase=released rss_kb=$(rss_kb) threads=$(threads)"
# Unloaded again: the webhook's p99 also grows with the database the earlier runs wrote,
# so "held" is compared with the runs on both sides of it.
load released
