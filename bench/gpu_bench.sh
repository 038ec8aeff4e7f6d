#!/usr/bin/env bash
# The serving and training benchmarks on a CUDA machine, as one prepared run; everything lands under $OUT.
#
#   OUT=/tmp/gpu-results bench/gpu_bench.sh        # ~6 min on one H200: fits a 10-minute device command
#
#   $OUT/machine.txt                     nvidia-smi, torch, CPU count
#   $OUT/serve_bench.json, bench-serve-gpu.md                 service on cuda:0 (eager), ceiling, naive
#   $OUT/graphs/serve_bench.json, graphs/bench-serve-gpu.md   the same with GVAE_CUDA_GRAPHS=true
#   $OUT/train_speed_cuda.json, train_speed.log               project epoch vs floor vs reference loop
#
# Each step runs even when an earlier one failed (its log says why); the exit status is the first failure's.
# Knobs: PY (python with the project's requirements), DATA_DIR (MNIST for train_speed), DURATION (s per cell).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
DURATION=${DURATION:-2}
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if [ -z "${DATA_DIR:-}" ]; then
  for d in ../shared/data shared/data "$HOME/.cache/gvae-serve/data"; do
    if [ -d "$d" ]; then DATA_DIR=$d; break; fi
  done
fi
mkdir -p "$OUT/graphs"
status=0
step() {  # step NAME COMMAND...: runs it, logs to $OUT/NAME.log, remembers the first failure
  local name=$1; shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then echo "== $name failed with status $rc"; [ "$status" -eq 0 ] && status=$rc; fi
}

{ nvidia-smi || true; "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.is_available() and torch.cuda.get_device_name(0))"; echo "cpus $(nproc)"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

# Serving: the same cells as on the CPU. On a GPU a pass costs about the same for 1 or 256 rows, so the
# batch and the tile are 256 rows; the ceiling and naive servers run beside it as on the CPU.
export GVAE_MAX_BATCH_SIZE=${GVAE_MAX_BATCH_SIZE:-256}
step serve_bench "$PY" bench/serve_bench.py --device cuda --duration "$DURATION" --startup-runs 2 \
  --out "$OUT" --doc "$OUT/bench-serve-gpu.md"
GVAE_CUDA_GRAPHS=true step serve_bench_graphs "$PY" bench/serve_bench.py --device cuda --duration "$DURATION" \
  --concurrency 1 32 --startup-runs 1 --out "$OUT/graphs" --doc "$OUT/graphs/bench-serve-gpu.md"

# Training: the project's epoch against the bare-step floor and the original example's loop.
if [ -n "${DATA_DIR:-}" ]; then
  step train_speed "$PY" bench/train_speed.py --device cuda --data-dir "$DATA_DIR" --rounds 3 --out "$OUT"
else
  echo "== train_speed skipped: no MNIST folder found (set DATA_DIR)" | tee "$OUT/train_speed.log"
fi
exit "$status"
