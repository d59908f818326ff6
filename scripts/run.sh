#!/usr/bin/env bash
# Builds and starts cognigy-session on the embedded SQLite store (./data/sessions.sqlite).
# Installs what a fresh Debian machine lacks. Configuration: environment variables or
# config/default.json (see README); extra arguments go to the binary (e.g. --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
ensure_build_deps
swift build -c release --product cognigy-session
exec "$ROOT/.build/release/cognigy-session" "$@"
