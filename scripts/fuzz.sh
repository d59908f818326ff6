#!/usr/bin/env bash
# libFuzzer: scripts/fuzz.sh TARGET SECONDS, or scripts/fuzz.sh all SECONDS.
# Targets (Fuzz/Targets): fuzz-http, fuzz-protobuf, fuzz-json, fuzz-event.
# Builds the targets (-sanitize=fuzzer,address, release, scratch path .build-fuzz; they are
# declared in Package.swift only when COGNIGY_FUZZ=1), then runs each for SECONDS on a copy
# of its seed corpus (Fuzz/corpus/TARGET) in a temp dir. Prints one line per target:
#   fuzz TARGET: N execs in S s (E exec/s), cov C, ft F, corpus U inputs, 0 crashes
# (cov: code edges reached, ft: libFuzzer's features). E.g. scripts/fuzz.sh all 600 -runs=10000000
# and exits non-zero if any target crashed or broke an invariant (the input's path and
# bytes are printed; a failing run's temp dir is kept).
# FUZZ_NICE (default 15) is the nice level; extra arguments after SECONDS go to libFuzzer.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh

TARGETS=(fuzz-http fuzz-protobuf fuzz-json fuzz-event)
[[ $# -ge 2 ]] || { echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer options]" >&2; exit 2; }
WHICH="$1"; SECONDS_EACH="$2"; shift 2
if [[ "$WHICH" == all ]]; then
  RUN=("${TARGETS[@]}")
else
  [[ " ${TARGETS[*]} " == *" $WHICH "* ]] || { echo "unknown target '$WHICH' (${TARGETS[*]})" >&2; exit 2; }
  RUN=("$WHICH")
fi
NICE="${FUZZ_NICE:-15}"

# -Xswiftc -sanitize=fuzzer,address instruments every module (SwiftPM's --sanitize=fuzzer
# alone instruments only the executable target); --sanitize=fuzzer also makes SwiftPM link
# libFuzzer's main in place of the target's.
for t in "${RUN[@]}"; do
  COGNIGY_FUZZ=1 nice -n "$NICE" swift build -c release --scratch-path .build-fuzz \
    --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address --product "$t" 2>&1 \
    | { grep -Ev "^\[|^Building for|^Build of product|Cannot export local symbol '__asan_extra_spill_area'" || true; }
done
BIN="$(COGNIGY_FUZZ=1 swift build -c release --scratch-path .build-fuzz --show-bin-path)"

FAILED=()
for t in "${RUN[@]}"; do
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")"
  mkdir -p "$WORK/corpus" "$WORK/artifacts"
  cp Fuzz/corpus/"$t"/* "$WORK/corpus/" 2>/dev/null || true
  # The Swift runtime's backtracer would fight ASan's own report; leave crashes to ASan.
  start=$(date +%s)
  set +e
  SWIFT_BACKTRACE=enable=no nice -n "$NICE" "$BIN/$t" -max_total_time="$SECONDS_EACH" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$WORK/artifacts/" "$@" "$WORK/corpus" >"$WORK/log" 2>&1
  rc=$?
  set -e
  elapsed=$(($(date +%s) - start))
  fstat() { grep -E "^stat::$1:" "$WORK/log" | awk '{print $2}'; }
  last="$(grep -E '^#[0-9]+' "$WORK/log" | tail -1)"
  cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
  ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")"
  units="$(find "$WORK/corpus" -type f | wc -l)"
  artifacts=("$WORK"/artifacts/*)
  [[ -e "${artifacts[0]}" ]] || artifacts=()
  echo "fuzz $t: $(fstat number_of_executed_units) execs in ${elapsed} s ($(fstat average_exec_per_sec) exec/s)," \
    "cov ${cov:-?}, ft ${ft:-?}, corpus $units inputs, ${#artifacts[@]} crashes"
  if [[ $rc -ne 0 || ${#artifacts[@]} -gt 0 ]]; then
    FAILED+=("$t")
    grep -E "Fatal error|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY" "$WORK/log" | head -5 >&2 || true
    for a in "${artifacts[@]}"; do
      echo "  input: $a" >&2
      od -A d -c "$a" | head -20 >&2
    done
    echo "  log: $WORK/log (reproduce: $BIN/$t ${artifacts[0]:-INPUT})" >&2
  else
    rm -rf "$WORK"
  fi
done
((${#FAILED[@]} == 0)) || { echo "fuzz: failed: ${FAILED[*]}" >&2; exit 1; }
