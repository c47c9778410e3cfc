#!/usr/bin/env bash
# Installs the system tools some tests drive, from Debian's packages, when they are missing and we
# may install them (root with apt-get). Never fails the test run: a test whose tool is missing
# skips and says why.
#   strace — the durability test traces stratad's system calls (fsync before an epoch is streamed).
set -uo pipefail
missing=()
command -v strace >/dev/null || missing+=(strace)
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
