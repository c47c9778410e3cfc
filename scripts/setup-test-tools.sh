#!/usr/bin/env bash
# Installs the system tools some tests drive, from Debian's packages, when they are missing and we
# may install them (root with apt-get). Never fails the test run: a test whose tool is missing
# skips and says why.
#   strace — the durability test traces stratad's system calls (fsync before an epoch is streamed).
#   chromium — the dashboard test drives headless Chromium (Debian's package) over DevTools.
# Builds mdbook (from crates.io, once, into .tools/) for the test that builds the book in docs/.
# Also fills .python-wheels/ (from PyPI, with pip) with what the Python client's tests install
# offline into a fresh venv — the client's own requirements (grpcio, protobuf), its build backend
# (flit_core) and `build`, pytest, pandas, and the frameworks its callbacks are tested against
# (PyTorch Lightning, transformers with accelerate) — and with TensorBoard, whose own reader
# checks the event files `strata export --format tensorboard` writes.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
wheels=.python-wheels
if command -v python3 >/dev/null && ! ls "$wheels"/grpcio-*.whl "$wheels"/protobuf-*.whl >/dev/null 2>&1; then
  echo "setup-test-tools: downloading the Python client's requirements into $wheels" >&2
  if ! python3 -m pip download -q -d "$wheels" "grpcio>=1.60" "protobuf>=4.22" >/dev/null 2>&1; then
    echo "setup-test-tools: could not download them; the Python client's tests will skip" >&2
  fi
fi
# The frameworks, pinned with every dependency and downloaded without resolving (--no-deps): they
# run on the project's PyTorch from .torch/, so pip must not fetch another torch for them. These
# versions work with torch 2.13 on Python 3.11 (~100 MB in all).
python_test_wheels=(
  flit-core==4.2.0 build==1.6.1 pyproject-hooks==1.3.3
  pytest==9.2.0 iniconfig==2.3.1 pluggy==1.7.0 pygments==2.21.0
  pandas==3.1.2 python-dateutil==4.0.0 six==1.17.0 tzdata==2026.6
  pytorch-lightning==2.6.6 lightning-utilities==0.15.3 torchmetrics==1.9.0 tqdm==4.70.1 pyyaml==6.0.4
  aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 attrs==26.1.0 frozenlist==1.8.0
  multidict==7.2.1 propcache==0.5.4 yarl==1.25.1 idna==3.21
  transformers==5.25.0 huggingface-hub==2.5.0 tokenizers==0.23.3 safetensors==0.8.0
  regex==2026.12.2 hf-xet==1.8.0 httpx2==2.17.0 httpcore2==2.17.0 h11==0.16.0 anyio==4.16.0
  truststore==0.10.5 typer==0.29.3 click==8.5.1 shellingham==1.5.4 rich==15.0.0
  markdown-it-py==4.3.0 mdurl==0.1.2 annotated-doc==0.0.7 kernels==0.19.1 tomlkit==0.15.3
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  accelerate==1.16.0 psutil==7.2.2
  numpy==2.4.6 packaging==26.4 typing-extensions==4.16.0
)
if command -v python3 >/dev/null && ! ls "$wheels"/transformers-*.whl "$wheels"/pytorch_lightning-*.whl >/dev/null 2>&1; then
  echo "setup-test-tools: downloading PyTorch Lightning, transformers, pandas and pytest (pinned, with their dependencies) into $wheels" >&2
  if ! python3 -m pip download -q --no-deps -d "$wheels" "${python_test_wheels[@]}" >/dev/null 2>&1; then
    echo "setup-test-tools: could not download them; the Python client's tests will skip" >&2
  fi
fi
if command -v python3 >/dev/null && ! ls "$wheels"/tensorboard-*.whl >/dev/null 2>&1; then
  echo "setup-test-tools: downloading TensorBoard and what it needs into $wheels" >&2
  if ! python3 -m pip download -q -d "$wheels" tensorboard >/dev/null 2>&1; then
    echo "setup-test-tools: could not download them; the TensorBoard export test will skip" >&2
  fi
fi
MDBOOK_VERSION=0.5.4
if [[ ! -x .tools/bin/mdbook ]] && command -v cargo >/dev/null; then
  echo "setup-test-tools: building mdbook $MDBOOK_VERSION into .tools/ (first time only, a few minutes)" >&2
  if ! cargo install --quiet --locked --no-default-features --version "$MDBOOK_VERSION" --root .tools mdbook >/dev/null 2>&1; then
    echo "setup-test-tools: could not build mdbook; the book's build test will skip" >&2
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
