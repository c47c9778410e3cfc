#!/usr/bin/env bash
# The test suite: installs libtorch and the tools the tests drive (strace, chromium, mdbook, the
# Python wheels) if needed, builds the binaries the end-to-end tests run, checks formatting and
# lints (`cargo fmt --check`, `cargo clippy -D warnings`: each counts as one test), then runs every
# test target in the workspace — all of them, even after one fails (`--no-fail-fast`) — and ends
# with one summary line:
#   tests: N passed, N failed, N skipped
# Extra arguments go to `cargo test` (e.g. a test name). Exits non-zero if anything failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup-libtorch.sh
bash scripts/setup-test-tools.sh
cargo build --workspace --bins --locked

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
# The gates, run whatever their outcome (one failing does not stop the tests).
gates_passed=0
gates_failed=0
gate() {
  echo "gate: $*" >&2
  if "$@"; then
    gates_passed=$((gates_passed + 1))
  else
    echo "gate FAILED: $*" >&2
    gates_failed=$((gates_failed + 1))
  fi
}
gate cargo fmt --all --check
gate cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?

# Every test binary (and doc-test run) ends with a line like
#   test result: ok. 63 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s
# A binary that crashed prints none; cargo then lists it under "error: N targets failed".
read -r passed failed ignored < <(
  sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$log" |
    awk '{p += $1; f += $2; i += $3} END {print p + 0, f + 0, i + 0}'
)
# A target that crashed (or did not build) printed no result line: count it as one failure.
targets_failed=$(sed -nE 's/^error: ([0-9]+) targets? failed:?$/\1/p' "$log" | tail -1)
targets_with_failures=$(grep -cE '^test result: FAILED' "$log" || true)
crashed=$((${targets_failed:-0} - targets_with_failures))
if ((crashed > 0)); then
  failed=$((failed + crashed))
fi
if [[ $status -ne 0 && $failed -eq 0 ]]; then
  failed=1 # cargo failed before running any test (e.g. a build error)
fi
passed=$((passed + gates_passed))
failed=$((failed + gates_failed))
echo
echo "tests: $passed passed, $failed failed, $ignored skipped"
if [[ $status -eq 0 && $failed -ne 0 ]]; then
  status=1
fi
exit "$status"
