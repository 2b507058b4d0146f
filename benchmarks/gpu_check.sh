#!/usr/bin/env bash
# The GPU checks that are not many-run work, in one call, for a session lent a CUDA machine for a
# few minutes (tests never need one). Many-run work (recipe rounds, ensemble members, transfer
# curves) goes through the sweep runner instead: benchmarks/sweeps/*.toml, `ensemble-train
# --workers K`, `transfer-curve --workers K` (docs/sweep.md, "The rounds"). From the repo root:
#
#   MNISTLAB_DATA_DIR=DIR OUT=DIR [PHASES=smoke,speed] bash benchmarks/gpu_check.sh
#
# 1. smoke: one tiny run of each CUDA path (speedrun with its CUDA graph, best preset, fp16 AMP,
#    Fashion-MNIST, transfer, evaluate); the first failure stops the script with its log.
# 2. speed, alone on the GPU: the speedrun preset (each step a CUDA graph replay) vs the public GPU
#    recipe, 10 seeds each, data resident on the GPU (benchmarks/time_to_accuracy.py), the same
#    preset without the graph, and larger batches. One line per race at the end; JSON in $OUT.
# A dry run on a CPU: DEV=cpu SEEDS=0 TTA_SHORT="--set train_subset=3000" bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD/src:$PWD/benchmarks" PYTHONUNBUFFERED=1 MNISTLAB_OFFLINE=1
OUT=${OUT:-/tmp/gpu-check} DEV=${DEV:-cuda} SEEDS=${SEEDS:-0,1,2,3,4,5,6,7,8,9} TTA_SHORT=${TTA_SHORT:-}
TTA_LIMIT=${TTA_LIMIT:-75} START=$SECONDS W=$(mktemp -d)
mkdir -p "$OUT"
ml() { python -m mnistlab "$@"; }
has() { [[ ",${PHASES:-smoke,speed}," == *",$1,"* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"

if has smoke; then
  echo "== 1. smoke"
  smoke() { echo "-- $*"; "$@" > "$OUT/smoke.out" 2>> "$OUT/smoke.err" || { echo "SMOKE FAILED: $*"; tail -30 "$OUT/smoke.err"; exit 3; }; }
  smoke ml train --preset speedrun --train-subset 3000 --device "$DEV" --out "$W/speed"
  grep -h "cuda-graph\|CUDA graph" "$OUT/smoke.err" && echo "SPEEDRUN RAN WITHOUT ITS CUDA GRAPH"
  smoke ml train --preset best --epochs 1 --train-subset 3000 --device "$DEV" --out "$W/best" --quiet
  smoke ml evaluate "$W/best" --json
  smoke ml train --arch resnet --epochs 1 --train-subset 3000 --device "$DEV" --amp on --out "$W/amp" --quiet
  smoke ml train --dataset fashion-mnist --arch simple --epochs 1 --train-subset 3000 --device "$DEV" --out "$W/fash" --quiet
  smoke ml transfer "$W/best" --to fashion-mnist --mode finetune --train-subset 100 --epochs 1 --out "$W/tr" --quiet
  echo "smoke passed in $((SECONDS - START)) s"
fi

# tta NAME ARGS...: one time-to-accuracy race into $OUT/tta-NAME.json, cut off after TTA_LIMIT seconds.
tta() {
  local name=$1; shift
  timeout --kill-after=5 "$TTA_LIMIT" python benchmarks/time_to_accuracy.py --device "$DEV" --json $TTA_SHORT "$@" \
    > "$OUT/tta-$name.json" 2>> "$OUT/tta.err"
  echo "tta $name rc=$? at $((SECONDS - START)) s"
}
if has speed; then
  echo "== 2. speed, alone on the GPU"
  tta graph --recipes speedrun,public --seeds "$SEEDS" --cli
  tta eager --recipes speedrun --seeds "$SEEDS" --set cuda_graph=false
  tta b1024e2 --recipes speedrun --seeds "$SEEDS" --set batch_size=1024 --set lr=0.02 --set epochs=2
  tta b512 --recipes speedrun --seeds "$SEEDS" --set batch_size=512 --set lr=0.015
  python benchmarks/gpu_summary.py "$OUT"
fi
rm -rf "$W"
