#!/usr/bin/env bash
# Installs libtorch for the build: PyPI's torch==2.13.0 wheel (the version tch 0.26 expects) with the
# CUDA runtime wheels it depends on, into .torch/ at the repository root (ignored by git).
# .cargo/config.toml points LIBTORCH at .torch/torch. Idempotent: a complete install is left alone.
set -euo pipefail
TORCH_VERSION=2.13.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.torch"
stamp="$dest/.installed-torch-$TORCH_VERSION"
if [[ -f "$stamp" ]]; then
  exit 0
fi
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "setup-libtorch: python3 with pip is needed to fetch torch==$TORCH_VERSION from PyPI" >&2
  exit 1
fi
echo "setup-libtorch: installing torch==$TORCH_VERSION from PyPI into $dest (first time only)" >&2
rm -rf "$dest"
"$python" -m pip install --quiet --disable-pip-version-check --no-compile --no-cache-dir \
  --target "$dest" "torch==$TORCH_VERSION"
touch "$stamp"
echo "setup-libtorch: done" >&2
