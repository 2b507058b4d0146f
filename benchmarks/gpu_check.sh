#!/usr/bin/env bash
# The speedrun preset on a CUDA GPU, run once by a session that has one (no session that built it did).
#
#   MNISTLAB_DATA_DIR=../shared/data bash benchmarks/gpu_check.sh [SEEDS]      # default seeds 0-9
#
# Prints, for the speedrun preset (fp32, then fp16 AMP) and the public GPU recipe it is raced
# against, the mean test accuracy and the time to 99% over the seeds (data resident on the GPU,
# the training loop's own validation included, test scoring excluded), then the whole
# `mnistlab train --preset speedrun --device cuda` command. Target (issue #13): 99.0% mean of 10
# seeds in <= 0.2 s of training on one H100. Paste the tables into docs/speed.md ("On a GPU").
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-$PWD/src}"
SEEDS="${1:-0,1,2,3,4,5,6,7,8,9}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
echo "== fp32: speedrun preset vs the public GPU recipe"
python benchmarks/time_to_accuracy.py --device cuda --recipes speedrun,public --seeds "$SEEDS" --cli
echo "== fp16 autocast + GradScaler (--amp): speedrun preset"
python benchmarks/time_to_accuracy.py --device cuda --recipes speedrun --seeds "$SEEDS" --amp
