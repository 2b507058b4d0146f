#!/usr/bin/env bash
# The second GPU call of a session, after benchmarks/gpu_check.sh (same layout, no smoke stage):
#
#   MNISTLAB_DATA_DIR=DIR OUT=DIR bash benchmarks/gpu_followup.sh [DEADLINE_S]
#
# 1. speed, alone on the GPU: the speedrun preset (batch 256) and its batch-1024, 2-epoch variant,
#    10 seeds each, after the loop stopped waiting for the GPU once per batch; the public recipe again.
# 2. side by side until DEADLINE_S: candidate recipes for `--preset best` (3 seeds each; chosen on
#    validation accuracy, never on test) and two more Fashion-MNIST recipes at the quickstart's
#    4-epoch budget. Every finished run comes back with its logits (ensemble members too).
set -uo pipefail
W=/tmp/gpuw2 DEADLINE=${1:-270} TTA_LIMIT=60
source "$(dirname "$0")/gpu_common.sh"
versions

echo "== 1. speed, alone on the GPU"
export OMP_NUM_THREADS=2
tta b256 --recipes speedrun --seeds $SEEDS --cli
tta b1024e2 --recipes speedrun --seeds $SEEDS --set batch_size=1024 --set lr=0.02 --set epochs=2
tta public --recipes public --seeds $SEEDS

echo "== 2. side by side ($(left) s left)"
start_mps
export OMP_NUM_THREADS=1
MNISTAUG="--degrees 10 --translate 0.1 --scale 0.1 --erasing 0"
for k in 0 1 2; do
  job ema-s$k "$(train_eval sweep/deeper-ema-s$k --preset best --seed $k $MNISTAUG)"
  job noema-s$k "$(train_eval sweep/deeper-noema-s$k --preset best --seed $k $MNISTAUG --ema-decay 0)"
  job lr1-s$k "$(train_eval sweep/deeper-lr1-s$k --preset best --seed $k --lr 0.001)"
  job resnet-s$k "$(train_eval sweep/resnet-ema-s$k --preset best --arch resnet --seed $k $MNISTAUG)"
done
for arch in simple resnet; do
  job fash-$arch "$(train_eval fashion/$arch-shift --dataset fashion-mnist --arch $arch --epochs 4 --patience 0 --degrees 0 --scale 0 --translate 0.05); \
                  $(train_eval fashion/$arch-fliponly --dataset fashion-mnist --arch $arch --epochs 4 --patience 0 --degrees 0 --scale 0 --translate 0 --hflip 0.5)"
done
wait
echo "side by side over at $((SECONDS - START)) s"
python benchmarks/gpu_summary.py "$W"
(cd "$W" && tar czf "$OUT/results.tgz" logs *.json fashion sweep/*.json sweep/*/*.json sweep/*/*.csv \
   --exclude=checkpoint.pt --exclude=model.safetensors 2>/dev/null)
for g in ema noema lr1; do pack_finished "$OUT/deeper-$g.tar" "sweep/deeper-$g-s*"; done
pack_finished "$OUT/resnet-ema.tar" "sweep/resnet-ema-s*"
ls -la "$OUT"
