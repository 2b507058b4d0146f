# Shared by benchmarks/gpu_check.sh and gpu_followup.sh (sourced, never run): the work folder,
# the deadline clock, and the helpers that start runs, races and MPS. Before sourcing, a script
# sets W (work folder), DEADLINE (seconds from its start) and TTA_LIMIT (seconds per race);
# DEV, SEEDS, SHORT and TTA_SHORT may come from the environment (a dry run on a CPU).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD/src:$PWD/benchmarks" PYTHONUNBUFFERED=1 MNISTLAB_OFFLINE=1
START=$SECONDS OUT=${OUT:-$W-out}
DEV=${DEV:-cuda} SEEDS=${SEEDS:-0,1,2,3,4,5,6,7,8,9} SHORT=${SHORT:-} TTA_SHORT=${TTA_SHORT:-}
rm -rf "$W"
mkdir -p "$W/logs" "$OUT"

ml() { python -m mnistlab "$@"; }
export -f ml
# Seconds until the deadline, at least 1 (timeout treats 0 as "no limit").
left() { local l=$(( DEADLINE - (SECONDS - START) )); echo $(( l > 1 ? l : 1 )); }

versions() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
}

# tta NAME ARGS...: one benchmarks/time_to_accuracy.py race into $W/tta-NAME.json.
tta() {
  local name=$1; shift
  timeout --kill-after=5 "$TTA_LIMIT" python benchmarks/time_to_accuracy.py --device "$DEV" --json $TTA_SHORT "$@" \
    > "$W/tta-$name.json" 2>> "$W/logs/tta.err"
  echo "tta $name rc=$? at $((SECONDS - START)) s"
}

# Kernels of runs side by side overlap under CUDA MPS; without it the GPU time-slices between them.
start_mps() {
  if nvidia-cuda-mps-control -d 2>/dev/null && timeout 30 python -c "import torch; torch.ones(1, device='$DEV')"; then
    echo "MPS on: kernels of the parallel runs may overlap"
  else
    echo quit | nvidia-cuda-mps-control 2>/dev/null; echo "MPS off: the GPU time-slices between runs"
  fi
}

# job NAME COMMAND: COMMAND in the background until the deadline, its output in $W/logs/NAME.*.
job() {
  local name=$1; shift
  ( timeout --kill-after=5 "$(left)" bash -c "$*" > "$W/logs/$name.out" 2> "$W/logs/$name.err"
    echo "job $name rc=$? at $((SECONDS - START)) s" ) &
}

# train_eval NAME TRAIN_FLAGS...: prints the command (for `job`, or to chain several in one job) that
# trains $W/NAME on one thread, then evaluates it into $W/NAME.eval.json.
train_eval() {
  local name=$1; shift
  echo "ml train $* --device $DEV --threads 1 $SHORT --out $W/$name --quiet \
    && OMP_NUM_THREADS=2 ml evaluate $W/$name --json > $W/$name.eval.json"
}

# pack_finished TAR RUN_GLOB: the finished runs (training.json written) matching RUN_GLOB under
# $W, without their checkpoints, into TAR; nothing when none finished.
pack_finished() {
  local finished
  finished=$(cd "$W" && ls -d $2/training.json 2>/dev/null) || return 0
  (cd "$W" && tar cf "$1" --exclude=checkpoint.pt $(dirname $finished))
}
