#!/usr/bin/env bash
# Runs every test: installs what a fresh Debian machine lacks, builds, runs the suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
ensure_build_deps

swift build --build-tests
swift test --skip-build
