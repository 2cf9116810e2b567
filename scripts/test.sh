#!/usr/bin/env bash
# The one command for rvisor's whole test suite:
#   1. scripts/setup.sh       packages + cached rootfs fixtures
#   2. cargo build --release --workspace
#   3. cargo test  --release --workspace   (crate unit tests + tests/*.rs)
# Exits non-zero if anything fails. `cargo test` runs with --no-fail-fast so
# every test target reports even when an earlier one failed.
# Extra arguments are passed to `cargo test` (e.g. a test name filter).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

now() { date +%s; }
phase() { printf '\n==> %s\n' "$*" >&2; }
T0=$(now)

phase "setup (packages and fixtures)"
bash scripts/setup.sh
T1=$(now)

command -v cargo >/dev/null 2>&1 || { echo "cargo not found in PATH" >&2; exit 1; }

phase "cargo build --release --workspace"
cargo build --release --workspace
T2=$(now)

phase "cargo test --release --workspace"
rc=0
cargo test --release --workspace --no-fail-fast "$@" || rc=$?
T3=$(now)

printf '\n==> timings: setup %ss, build %ss, test %ss, total %ss\n' \
    $((T1 - T0)) $((T2 - T1)) $((T3 - T2)) $((T3 - T0)) >&2
if [ "$rc" -ne 0 ]; then
    echo "==> test suite FAILED (cargo test exit status $rc)" >&2
else
    echo "==> test suite passed" >&2
fi
exit "$rc"
