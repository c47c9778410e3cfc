#!/usr/bin/env bash
# The GPU check: run it on a machine with an NVIDIA GPU (nvidia-smi on the PATH). It
#   1. trains a short run on the GPU through stratad and a worker (strata-worker, CUDA_VISIBLE_DEVICES
#      set to that GPU alone), from `start` to the last epoch stored;
#   2. trains the same model on the same data in a plain PyTorch loop on the same GPU
#      (scripts/gpu_check.py, the project's PyTorch in .torch/);
#   3. checks that the GPU's memory is free again once the run has ended (its worker exited: the
#      CUDA context and libtorch's caching allocator went with it), and that the daemon never
#      held any (it links no libtorch);
# and prints the figures (and writes them as JSON). Exits non-zero when the run fails or the
# memory is not given back.
#
#   ./scripts/gpu-check.sh                       # cuda:0, release build (built if missing)
#   ./scripts/gpu-check.sh --device cuda:1 --epochs 10 --rows 100000
#   ./scripts/gpu-check.sh --device cpu --rows 4000 --epochs 2   # the same check on the CPU, to
#                                                 # try the script where there is no GPU
# Options: --device cpu|cuda:N (default cuda:0), --epochs N (5), --rows N (40000 training rows),
# --hidden W,W (256,256), --batch N (256), --bin-dir DIR (default: target/release, built first),
# --json FILE (default: TARGET/gpu-check.json), --keep (keep the work folder).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

device=cuda:0 epochs=5 rows=40000 hidden=256,256 batch=256 bin_dir="" json="" keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --hidden) hidden="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$device" in
  cpu) gpu="" ;;
  cuda:[0-9]*) gpu="${device#cuda:}" ;;
  cuda) device=cuda:0; gpu=0 ;;
  *) echo "gpu-check: --device is cpu or cuda:N, not $device" >&2; exit 2 ;;
esac

say() { echo "gpu-check: $*" >&2; }
if [[ -n "$gpu" ]] && ! command -v nvidia-smi >/dev/null; then
  say "nvidia-smi is not on the PATH: this check needs an NVIDIA GPU (or --device cpu)"
  exit 2
fi
gpu_used_mib() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$gpu" | tr -d ' '; }
# The GPU memory the compute processes with this pid hold (0 when none).
pid_gpu_mib() {
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -i "$gpu" |
    awk -F', *' -v pid="$1" '$1 == pid { used += $2 } END { print used + 0 }'
}

bash scripts/setup-libtorch.sh
target="${CARGO_TARGET_DIR:-target}"
if [[ -z "$bin_dir" ]]; then
  say "building stratad, strata-worker and strata (release)"
  cargo build --release --locked -p strata-server -p strata-worker -p strata-cli --bins >&2
  bin_dir="$target/release"
fi
bin_dir="$(cd "$bin_dir" && pwd)"
json="${json:-$target/gpu-check.json}"
python=${PYTHON:-python3}
export PYTHONPATH="$root/.torch${PYTHONPATH:+:$PYTHONPATH}"
# torch warns that numpy is missing; nothing here uses it.
export PYTHONWARNINGS=ignore

work="$(mktemp -d "${TMPDIR:-/tmp}/strata-gpu-check.XXXXXX")"
daemon_pid=""
cleanup() {
  if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [[ $keep -eq 0 ]]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT

say "writing $rows training rows (64 features, 10 classes) into $work"
"$python" scripts/gpu_check.py data --dir "$work" --rows "$rows"

before_mib="n/a"
[[ -n "$gpu" ]] && before_mib="$(gpu_used_mib)"

say "starting stratad"
"$bin_dir/stratad" --listen 127.0.0.1:0 --dashboard-listen off --data-dir "$work/data" \
  --data-root "$work" >"$work/stratad.out" 2>"$work/stratad.log" &
daemon_pid=$!
addr=""
for _ in $(seq 1 600); do
  addr="$(sed -n 's/^stratad listening on //p' "$work/stratad.out")"
  [[ -n "$addr" ]] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/stratad.log" >&2; say "stratad did not start"; exit 1; }
  sleep 0.1
done
[[ -n "$addr" ]] || { say "stratad did not say where it listens"; exit 1; }
strata() { "$bin_dir/strata" --addr "http://$addr" "$@"; }
devices="$(strata info --json | "$python" -c 'import json,sys; print(" ".join(json.load(sys.stdin)["devices"]))')"
case " $devices " in
  *" $device "*) ;;
  *) say "the daemon's workers see $devices, not $device"; exit 1 ;;
esac
daemon_gpu_mib="n/a"
[[ -n "$gpu" ]] && daemon_gpu_mib="$(pid_gpu_mib "$daemon_pid")"

say "training through a worker on $device"
started=$(date +%s.%N)
run="$(strata start --json --device "$device" --dataset "csv:$work/train.csv" \
  --val-dataset "csv:$work/val.csv" --task classification --model "mlp:$hidden" \
  --epochs "$epochs" --batch-size "$batch" --lr 1e-3 --seed 1 |
  "$python" -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')"
# While it trains: its worker, and the most GPU memory seen used (the worker's and in all).
worker_pid=0 worker_peak_mib=0 peak_mib="n/a"
[[ -n "$gpu" ]] && peak_mib="$before_mib"
while :; do
  show="$(strata show "$run" --json)"
  status="$(echo "$show" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
  pid="$(echo "$show" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["worker_pid"])')"
  [[ "$pid" != 0 ]] && worker_pid="$pid"
  if [[ -n "$gpu" ]]; then
    used="$(gpu_used_mib)"; ((used > peak_mib)) && peak_mib=$used
    if [[ "$worker_pid" != 0 ]]; then
      mine="$(pid_gpu_mib "$worker_pid")"; ((mine > worker_peak_mib)) && worker_peak_mib=$mine
    fi
  fi
  case "$status" in queued | running) sleep 0.5 ;; *) break ;; esac
done
strata_seconds="$("$python" -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 3))" "$(date +%s.%N)" "$started")"
if [[ "$status" != completed ]]; then
  say "the run ended $status: $(echo "$show" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["reason"])')"
  exit 1
fi
strata_val="$(echo "$show" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["epochs"][-1]["val_loss"])')"
# The run's end is recorded once its worker has exited.
worker_gone=yes
if [[ "$worker_pid" != 0 ]] && kill -0 "$worker_pid" 2>/dev/null && [[ "$(ps -o stat= -p "$worker_pid")" != Z* ]]; then
  worker_gone=no
fi
after_mib="n/a" freed=yes
if [[ -n "$gpu" ]]; then
  after_mib="$(gpu_used_mib)"
  # Other processes may use the GPU meanwhile: what counts is that the worker holds nothing.
  [[ "$(pid_gpu_mib "$worker_pid")" == 0 ]] || freed=no
  ((after_mib <= before_mib + 64)) || freed=no
  [[ "$daemon_gpu_mib" == 0 ]] || freed=no
fi

say "training the same model in a PyTorch loop on $device"
torch_json="$("$python" scripts/gpu_check.py torch --dir "$work" --device "$device" \
  --epochs "$epochs" --hidden "$hidden" --batch "$batch" --lr 1e-3 --seed 1)"
field() { echo "$torch_json" | "$python" -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
torch_seconds="$("$python" -c "import sys; print(round(float(sys.argv[1]), 3))" "$(field seconds)")" torch_val="$(field val_loss)" torch_peak="$(field peak_mib)" torch_version="$(field torch)"
ratio="$("$python" -c "import sys; print(round(float(sys.argv[1]) / float(sys.argv[2]), 3))" "$strata_seconds" "$torch_seconds")"

gpu_name="cpu"
[[ -n "$gpu" ]] && gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader -i "$gpu")"
cat <<EOF

GPU check on $device ($gpu_name), $rows training rows × 64 features, mlp:$hidden, $epochs epochs, batch $batch
| figure | Strata (a worker) | PyTorch $torch_version loop | ratio |
|---|---|---|---|
| time | ${strata_seconds} s (start → last epoch stored; worker start and CSV parse included) | ${torch_seconds} s (from tensors in memory) | ${ratio} |
| final validation loss | ${strata_val} | ${torch_val} | |
| GPU memory | before ${before_mib} MiB, peak ${peak_mib} MiB (worker ${worker_peak_mib} MiB), after ${after_mib} MiB; stratad ${daemon_gpu_mib} MiB | peak reserved ${torch_peak} MiB | |
worker exited: $worker_gone · GPU memory given back: $freed
EOF
mkdir -p "$(dirname "$json")"
cat >"$json" <<EOF
{"device": "$device", "gpu": "$gpu_name", "rows": $rows, "hidden": "$hidden", "epochs": $epochs, "batch": $batch,
 "strata_seconds": $strata_seconds, "torch_seconds": $torch_seconds, "ratio": $ratio,
 "strata_val_loss": $strata_val, "torch_val_loss": $torch_val, "torch": "$torch_version",
 "gpu_mib": {"before": "$before_mib", "peak": "$peak_mib", "worker_peak": "$worker_peak_mib", "after": "$after_mib", "stratad": "$daemon_gpu_mib"},
 "worker_exited": "$worker_gone", "memory_freed": "$freed"}
EOF
say "written: $json"
[[ "$worker_gone" == yes && "$freed" == yes ]]
