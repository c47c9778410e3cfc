#!/usr/bin/env bash
# Installs the system tools some tests drive, from Debian's packages, when they are missing and we
# may install them (root with apt-get). Never fails the test run: a test whose tool is missing
# skips and says why.
#   strace — the durability test traces stratad's system calls (fsync before an epoch is streamed).
#   chromium — the dashboard test drives headless Chromium (Debian's package) over DevTools.
# Also fills .python-wheels/ (from PyPI, with pip) with what the Python client needs to build and
# run (grpcio-tools at build time, grpcio and protobuf at run time), so that its test installs it
# offline into a fresh venv, and with TensorBoard, whose own reader checks the event files
# `strata export --format tensorboard` writes.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
wheels=.python-wheels
if command -v python3 >/dev/null && ! ls "$wheels"/grpcio_tools-*.whl >/dev/null 2>&1; then
  echo "setup-test-tools: downloading the Python client's build and run requirements into $wheels" >&2
  if ! python3 -m pip download -q -d "$wheels" "setuptools>=61" wheel "grpcio-tools>=1.60" "grpcio>=1.60" "protobuf>=4.21" >/dev/null 2>&1; then
    echo "setup-test-tools: could not download them; the Python client's test will skip" >&2
  fi
fi
if command -v python3 >/dev/null && ! ls "$wheels"/tensorboard-*.whl >/dev/null 2>&1; then
  echo "setup-test-tools: downloading TensorBoard and what it needs into $wheels" >&2
  if ! python3 -m pip download -q -d "$wheels" tensorboard >/dev/null 2>&1; then
    echo "setup-test-tools: could not download them; the TensorBoard export test will skip" >&2
  fi
fi
missing=()
command -v strace >/dev/null || missing+=(strace)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "setup-test-tools: ${missing[*]} missing and cannot be installed here (needs root and apt-get); the tests that need them will skip" >&2
  exit 0
fi
echo "setup-test-tools: installing ${missing[*]} from Debian's packages" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1; then
  echo "setup-test-tools: could not install ${missing[*]}; the tests that need them will skip" >&2
fi
exit 0
