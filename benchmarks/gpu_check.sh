#!/usr/bin/env bash
# Every GPU check of this project in one script, for a session that is lent a CUDA machine for a
# few minutes (tests never need one). Run from the repository root:
#
#   MNISTLAB_DATA_DIR=DIR OUT=DIR [PHASES=smoke,speed,long] bash benchmarks/gpu_check.sh [DEADLINE_S]
#
# PHASES picks stages (default all three): a session can spend a short first call on smoke,speed
# and a second on long runs (benchmarks/gpu_sweep.sh holds later sweeps).
# 1. smoke: one tiny run of each CUDA path (speedrun with its CUDA graph, best preset with EMA and
#    erasing, fp16 AMP, Fashion with mirroring, transfer, evaluate); on a failure the script stops
#    there, logs in $OUT.
# 2. speed, alone on the GPU: the speedrun preset (each step a CUDA graph replay) vs the public GPU
#    recipe, 10 seeds each, data resident on the GPU (benchmarks/time_to_accuracy.py; target of
#    issue #13: 99.0% mean of 10 seeds in <= 0.2 s of training on one H100), the same preset
#    without the graph, and larger batches.
# 3. long runs, side by side on the GPU until DEADLINE_S (default 480 s after the start):
#    `--preset best` for deeper and resnet, seeds 0-4 (ensemble members; deeper seeds 0-2 are the
#    best-preset figure), both transfer curves, and Fashion-MNIST recipes at the quickstart's
#    4-epoch budget. Unfinished runs keep their checkpoints so they can be resumed on a CPU.
# 4. pack: what comes back (at most 8 files) into $OUT.
# A dry run of the whole script on a CPU, in a few minutes:
#   DEV=cpu SEEDS=0 SHORT="--epochs 1 --train-subset 600" TTA_SHORT="--set train_subset=3000" bash benchmarks/gpu_check.sh 200
set -uo pipefail
W=/tmp/gpuw DEADLINE=${1:-480} TTA_LIMIT=75
source "$(dirname "$0")/gpu_common.sh"
pack() {
  (cd "$W" && tar czf "$OUT/results.tgz" logs *.json curve-*/curve.* curve-*/*.png fashion/*.json fashion/*/*.json \
     fashion/*/history.csv 2>/dev/null)
  pack_finished "$OUT/deeper.tar" "ens/deeper-s*"
  pack_finished "$OUT/resnet.tar" "ens/resnet-s*"
  for k in 0 1 2; do  # a best-preset run cut off by the deadline: its checkpoint, to resume elsewhere
    [ -f "$W/ens/deeper-s$k/checkpoint.pt" ] && [ ! -f "$W/ens/deeper-s$k/training.json" ] && \
      (cd "$W" && tar cf "$OUT/resume-deeper-s$k.tar" ens/deeper-s$k)
  done
  ls -la "$OUT"
}

versions

has() { [[ ",${PHASES:-smoke,speed,long}," == *",$1,"* ]]; }

if has smoke; then
echo "== 1. smoke ($(left) s left)"
export OMP_NUM_THREADS=2
smoke() { echo "-- $*"; "$@" > "$W/logs/smoke.out" 2>> "$W/logs/smoke.err" || { echo "SMOKE FAILED: $*"; tail -30 "$W/logs/smoke.err"; pack; exit 3; }; }
smoke ml train --preset speedrun --train-subset 3000 --device $DEV --out "$W/s-speed"
grep -h "cuda-graph\|CUDA graph" "$W/logs/smoke.err" && echo "SPEEDRUN RAN WITHOUT ITS CUDA GRAPH"
smoke ml train --preset best --epochs 1 --train-subset 3000 --device $DEV --out "$W/s-best" --quiet
smoke ml evaluate "$W/s-best" --json
smoke ml train --arch resnet --epochs 1 --train-subset 3000 --device $DEV --amp --out "$W/s-amp" --quiet
smoke ml train --dataset fashion-mnist --arch simple --hflip 0.5 --degrees 0 --epochs 1 --train-subset 3000 --device $DEV --out "$W/s-fash" --quiet
smoke ml transfer "$W/s-best" --to fashion-mnist --mode finetune --train-subset 100 --epochs 1 --out "$W/s-tr" --quiet
echo "smoke passed in $((SECONDS - START)) s"
fi

if has speed; then
echo "== 2. speed, alone on the GPU ($(left) s left)"
tta graph --recipes speedrun,public --seeds $SEEDS --cli
tta eager --recipes speedrun --seeds $SEEDS --set cuda_graph=false
tta b1024e2 --recipes speedrun --seeds $SEEDS --set batch_size=1024 --set lr=0.02 --set epochs=2
tta b512 --recipes speedrun --seeds $SEEDS --set batch_size=512 --set lr=0.015
fi

if has long; then
echo "== 3. long runs side by side ($(left) s left)"
start_mps
export OMP_NUM_THREADS=1
member() { train_eval ens/$1-s$2 --preset best --arch $1 --seed $2; }
for k in 0 1 2; do job deeper-s$k "$(member deeper $k)"; done
for k in 0 1 2 3 4; do job resnet-s$k "$(member resnet $k)"; done
for k in 3 4; do job deeper-s$k "$(member deeper $k)"; done
for pair in mnist:fashion-mnist fashion-mnist:mnist; do
  src=${pair%%:*} dst=${pair##*:}
  job curve-$src "ml train --dataset $src --arch simple --epochs 4 --patience 0 --device $DEV --threads 1 $SHORT --out $W/src-$src --quiet \
    && ml transfer-curve $W/src-$src --to $dst --subsets 100,1000,10000,all --seeds 0,1,2 --threads 1 --out $W/curve-$src --quiet --json > $W/curve-$src.json"
done
# Fashion-MNIST recipes at the quickstart's 4-epoch budget: one lane per architecture, recipes in turn.
RECIPES="mnistaug: noaug:--no-augment flip:--degrees_0_--hflip_0.5 fliperase:--degrees_0_--hflip_0.5_--erasing_0.25"
for arch in simple resnet deeper; do
  lane=""
  for item in $RECIPES; do
    r=${item%%:*} flags=${item#*:}
    lane+="$(train_eval fashion/$arch-$r --dataset fashion-mnist --arch $arch --epochs 4 --patience 0 ${flags//_/ }); "
  done
  job fash-$arch "$lane"
done
wait
echo "long runs over at $((SECONDS - START)) s"
fi
python benchmarks/gpu_summary.py "$W"
pack
