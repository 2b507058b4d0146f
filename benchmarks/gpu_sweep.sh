#!/usr/bin/env bash
# Long runs side by side on one GPU, for the decisions the CPU cannot afford (run from the repo root):
#
#   MNISTLAB_DATA_DIR=DIR OUT=DIR [PHASES=best,members,fashion] bash benchmarks/gpu_sweep.sh [DEADLINE_S]
#
# 1. `--preset best`, round 2: three more candidates, seeds 0-2 each, to be compared on mean
#    validation accuracy with round 1 (docs/quickstart.md: deeper, default augmentation, with and
#    without an EMA): deeper with label smoothing 0.1, the same with an EMA of the weights, and
#    resnet with the preset's schedule. The rule, written before the runs: the candidate with the
#    highest mean validation accuracy over seeds 0-2 becomes the preset; test is read once per run
#    (evaluate) to report, never to choose.
# 2. More ensemble members of round 1's two deeper recipes (seeds 3 and 4 of each; PHASES=members2,
#    a later call: seeds 5-9 of each and seeds 3-4 of round 2's resnet).
# 3. Fashion-MNIST without augmentation at longer budgets than the quickstart's 4 epochs (simple
#    6-12, resnet 6-10, deeper 3 and 6), seed 0, for the quickstart's Fashion plan (chosen on
#    validation).
# 4. (PHASES=recipes, a second call) Fashion-MNIST recipes at the quickstart's Fashion budgets
#    (resnet 6 epochs, simple 7), seeds 0 and 1: no augmentation (the default), mirror only,
#    mirror and shift, lr 6e-3, weight decay 5e-4, label smoothing 0.1 (checkpoint on val_acc);
#    chosen on mean validation accuracy.
# Every run is evaluated (predictions.npz, val_predictions.npz: ensembles are built from them
# afterwards on a CPU). Runs still going at DEADLINE_S are killed; finished ones are packed.
# A dry run on a CPU: DEV=cpu SHORT="--epochs 1 --train-subset 600" bash benchmarks/gpu_sweep.sh 300
set -uo pipefail
W=/tmp/gpus DEADLINE=${1:-540} TTA_LIMIT=0
source "$(dirname "$0")/gpu_common.sh"
versions
start_mps
export OMP_NUM_THREADS=1

# run NAME FLAGS...: one training run into $W/NAME, then its evaluation; the whole as one job.
run() {
  local name=$1; shift
  job "${name//\//-}" "$(train_eval "$name" "$@")"
}

has() { [[ ",${PHASES:-best,members,fashion}," == *",$1,"* ]]; }
mkdir -p "$W/best" "$W/members" "$W/fashion" "$W/recipes"
if has best; then
for k in 0 1 2; do
  run best/ls-s$k --preset best --label-smoothing 0.1 --seed $k
  run best/lsema-s$k --preset best --label-smoothing 0.1 --ema-decay 0.999 --seed $k
  run best/resnet-s$k --preset best --arch resnet --seed $k
done
fi
if has members; then
for k in 3 4; do
  run members/noema-s$k --preset best --seed $k
  run members/ema-s$k --preset best --ema-decay 0.999 --seed $k
done
fi
# Fashion: one lane per architecture, budgets in turn (shortest first, so the lane yields early).
lane() {
  local arch=$1 cmds=""; shift
  for e in "$@"; do
    cmds+="$(train_eval fashion/$arch-e$e --dataset fashion-mnist --arch $arch --epochs $e --patience 0); "
  done
  job fash-$arch "$cmds"
}
if has members2; then  # a third call: seeds 5-9 of both deeper recipes, seeds 3-4 of resnet round 2
for k in 5 6 7 8 9; do
  run members/noema-s$k --preset best --seed $k
  run members/ema-s$k --preset best --ema-decay 0.999 --seed $k
done
for k in 3 4; do run members/resnet-s$k --preset best --arch resnet --seed $k; done
fi
if has fashion; then
lane simple 6 8 10 12
lane resnet 6 8 10
lane deeper 3 6
fi
if has recipes; then
RECIPES="none: flip:--augment,--degrees,0,--translate,0,--scale,0,--hflip,0.5 flipshift:--augment,--degrees,0,--scale,0,--hflip,0.5 \
  lr6:--lr,6e-3 wd5:--weight-decay,5e-4 ls:--label-smoothing,0.1,--monitor,val_acc"
for k in 0 1; do
  for item in $RECIPES; do
    r=${item%%:*} flags=${item#*:}
    run recipes/resnet-$r-s$k --dataset fashion-mnist --arch resnet --epochs 6 --patience 0 --seed $k ${flags//,/ }
    run recipes/simple-$r-s$k --dataset fashion-mnist --arch simple --epochs 7 --patience 0 --seed $k ${flags//,/ }
  done
done
fi
wait
echo "runs over at $((SECONDS - START)) s"
python benchmarks/gpu_summary.py "$W"

(cd "$W" && tar czf "$OUT/results.tgz" logs best/*.json members/*.json fashion/*.json fashion/*/*.json fashion/*/history.csv \
   recipes/*.json recipes/*/*.json recipes/*/history.csv 2>/dev/null)
pack_finished "$OUT/best-ls.tar" "best/ls-s*"
pack_finished "$OUT/best-lsema.tar" "best/lsema-s*"
pack_finished "$OUT/best-resnet.tar" "best/resnet-s*"
pack_finished "$OUT/members.tar" "members/*ema-s[34]"
pack_finished "$OUT/members-noema.tar" "members/noema-s[5-9]"
pack_finished "$OUT/members-ema.tar" "members/ema-s[5-9]"
pack_finished "$OUT/members-resnet.tar" "members/resnet-s*"
(cd "$W" && tar czf "$OUT/fashion.tgz" --exclude=checkpoint.pt --exclude=model.safetensors fashion 2>/dev/null)
ls -la "$OUT"
