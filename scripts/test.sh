#!/usr/bin/env bash
# The test suite: installs libtorch if needed, builds the binaries the end-to-end tests drive,
# then runs every test in the workspace. Extra arguments go to `cargo test` (e.g. a test name).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup-libtorch.sh
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
