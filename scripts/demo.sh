#!/usr/bin/env bash
# The main job: builds Strata, starts stratad on an embedded data dir (./demo-data), trains two
# short runs on the spirals dataset — one uniform learning rate, one with a ten times lower rate
# for the first layer — streams both live, prints both runs with the daemon's verdicts, and ends
# with the comparison: which setup generalizes better and why, a terminal chart, and a PNG of
# both runs' training (dashed) and validation (solid) curves in $data_dir/compare.png. The daemon's
# dashboard (its address printed first: 127.0.0.1:8080 unless that is taken, or
# STRATA_DEMO_DASHBOARD=ADDR) shows the same runs live in a browser while the demo runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup-libtorch.sh
cargo build --workspace --bins --locked

data_dir=${STRATA_DEMO_DATA_DIR:-./demo-data}
mkdir -p "$data_dir"
out="$data_dir/stratad.out"
: > "$out"
dashboard_flags=()
[[ -n "${STRATA_DEMO_DASHBOARD:-}" ]] && dashboard_flags=(--dashboard-listen "$STRATA_DEMO_DASHBOARD")
./target/debug/stratad --listen 127.0.0.1:0 "${dashboard_flags[@]}" --data-dir "$data_dir" \
  >"$out" 2>>"$data_dir/stratad.log" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT

addr=""
for _ in $(seq 1 600); do
  addr=$(sed -n 's/^stratad listening on //p' "$out")
  [[ -n "$addr" ]] && break
  kill -0 $daemon 2>/dev/null || { echo "stratad did not start; see $data_dir/stratad.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$addr" ]] || { echo "stratad did not report its address; see $data_dir/stratad.log" >&2; exit 1; }
export STRATA_ADDR="http://$addr"
strata=./target/debug/strata
echo "stratad is serving on $addr with data dir $data_dir (log: $data_dir/stratad.log)"
# Printed right after the gRPC line (or not at all, when its default port is taken).
dashboard=""
for _ in $(seq 1 10); do
  dashboard=$(sed -n 's/^stratad dashboard on //p' "$out")
  [[ -n "$dashboard" ]] && break
  sleep 0.1
done
if [[ -n "$dashboard" ]]; then
  echo "dashboard: open $dashboard in a browser to watch the runs train (and compare them)"
fi

common=(--dataset spirals --samples 600 --noise 0.3 --model mlp:64,64 --epochs 15 --batch-size 32 --seed 7 --tag demo)

echo
echo "== run 1: every layer at lr 1e-2"
uniform=$($strata start "${common[@]}" --lr 1e-2 --name uniform-1e-2)
$strata watch "$uniform"

echo
echo "== run 2: head and layer1 at 1e-2, layer0 at 1e-3"
layered=$($strata start "${common[@]}" --lr 1e-2 --layer-lr 'layer0=1e-3' --name layer0-1e-3)
$strata watch "$layered"

echo
$strata show "$uniform"
echo
$strata show "$layered"
echo
$strata list --tag demo --limit 10

echo
echo "== which layer-rate setup helped?"
$strata compare "$uniform" "$layered" --plot "$data_dir/compare.png"
