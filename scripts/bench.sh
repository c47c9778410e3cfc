#!/usr/bin/env bash
# Measures every performance claim of the README on this machine, side by side with what a user
# would use instead (a PyTorch loop in Python, a hand-written tch loop), and says how each figure
# compares with its goal: builds in release, runs bench/ (strata-bench), prints one Markdown table
# and writes it as JSON to TARGET/bench.json. Not part of the test suite.
#   ./scripts/bench.sh            # the whole run (a few minutes)
#   ./scripts/bench.sh --quick    # fewer repetitions, a smaller large case
#   ./scripts/bench.sh --only training,store   # some sections (training, workers, remote, streaming, dashboard, ingest, store, leakage, footprint, bounds)
# The Python logger has its own: PYTHONPATH=.torch:clients/python python3 bench/python_logger.py
# Respects CARGO_TARGET_DIR (default: target/). Run it on a quiet machine: other work on the
# cores or the disk shows up in every figure (the table's header gives the load average).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-libtorch.sh
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
cargo build --release --locked -p strata-server -p strata-worker -p strata-cli -p strata-bench --bins
exec "$target/release/strata-bench" --repo "$root" --bin-dir "$target/release" \
  --work-dir "$target/bench-work" --json "$target/bench.json" "$@"
