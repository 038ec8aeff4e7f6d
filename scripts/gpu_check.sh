#!/usr/bin/env bash
# On a machine with CUDA: checks that the model really runs on the GPU and measures batched decoding.
#
#   scripts/gpu_check.sh                      # the bundled model (or $GVAE_STORE_ROOT's), GVAE_DEVICE=cuda
#   BATCHES=100 GVAE_DEVICE=cuda:1 scripts/gpu_check.sh
#
# 1. loads the served version onto the GPU the way the service does and asserts that every parameter and
#    buffer lives on `cuda`; times the model's batched decode of 256 codes (no HTTP);
# 2. starts `python -m service` with GVAE_DEVICE=cuda on a free loopback port, checks that /readyz and
#    /v1/models/current report a cuda device, calls every route (scripts/probe_service.py --all) and times
#    BATCHES requests of POST /v1/decode with 256 codes (HTTP + JSON + decode + PNG);
# 3. stops the service with SIGTERM and checks that it shuts down cleanly.
# When the store holds no version yet, a seeded model of the default size is served from a temporary store.
# Fails at once, saying so, on a machine without CUDA. Env: PYTHON (default .venv/bin/python), BATCHES (50).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
BATCHES=${BATCHES:-50}
export GVAE_DEVICE=${GVAE_DEVICE:-cuda}
case "$GVAE_DEVICE" in cuda*) ;; *) echo "FAIL: GVAE_DEVICE=$GVAE_DEVICE; this check is for cuda devices" >&2; exit 1 ;; esac

"$PY" - <<'EOF' || exit 1
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"FAIL: CUDA is not available here (torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
             f"{torch.cuda.device_count()} devices visible): this check needs an NVIDIA GPU and driver")
print(f"== torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name(0)}, "
      f"{torch.cuda.device_count()} device(s), driver-visible")
EOF

STORE_TMP=""
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$STORE_TMP" ] && rm -rf "$STORE_TMP"
  return 0
}
trap cleanup EXIT

if ! "$PY" -c 'import sys; from model_store import ModelStore; sys.exit(not ModelStore().versions("gvae"))'; then
  STORE_TMP=$(mktemp -d)
  export GVAE_STORE_ROOT=$STORE_TMP GVAE_MODEL_VERSION=latest
  echo "== the store holds no version of gvae: serving a seeded model of the default size from $STORE_TMP"
  "$PY" -c 'import torch; from model_store import GumbelVAE, ModelStore, VAEConfig
torch.manual_seed(0)
with ModelStore().register("gvae") as draft:
    draft.save_weights(GumbelVAE(VAEConfig()))'
fi

echo "== 1. parameters on the GPU and the model's own batched decode throughput"
"$PY" - <<'EOF'
import os
import time

import torch

from model_store import ModelStore
from service.inference import InferenceEngine, resolve_device

device = resolve_device(os.environ["GVAE_DEVICE"])
engine = InferenceEngine.from_store(ModelStore(), os.environ.get("GVAE_MODEL_NAME", "gvae"),
                                    os.environ.get("GVAE_MODEL_VERSION", "latest"), device)
tensors = list(engine.model.parameters()) + list(engine.model.buffers())
off = [t.device for t in tensors if t.device.type != "cuda"]
assert not off, f"{len(off)} of {len(tensors)} parameters/buffers are not on cuda: {set(off)}"
count = sum(p.numel() for p in engine.model.parameters())
print(f"ok   {engine.tag}: all {len(tensors)} parameter/buffer tensors ({count:,} weights) on "
      f"{sorted({str(t.device) for t in tensors})}")
engine.warm_up()
for batch in (256, 4096):
    codes = torch.randint(engine.categorical_dim, (batch, engine.latent_dim))  # (B, N)
    engine.decode_codes(codes)
    torch.cuda.synchronize(device)
    reps = 50
    start = time.perf_counter()
    for _ in range(reps):
        images = engine.decode_codes(codes)  # (B, 1, 28, 28), copied back to the CPU
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    print(f"throughput (model only, incl. copy to host): decode of {batch} codes: "
          f"{reps * batch / seconds:,.0f} images/s, {1000 * seconds / reps:.2f} ms/batch, out {tuple(images.shape)}")
EOF

echo "== 2. the service on $GVAE_DEVICE"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp)
"$PY" -m service --host 127.0.0.1 --port "$PORT" >"$LOG" 2>&1 &
SERVER_PID=$!
if ! python3 scripts/probe_service.py "http://127.0.0.1:$PORT" --wait 300 --all --expect-device cuda \
     --throughput "$BATCHES"; then
  tail -30 "$LOG"; echo "FAIL: the service on $GVAE_DEVICE" >&2; exit 1
fi
grep -m1 " loaded " "$LOG" || true

echo "== 3. SIGTERM"
kill -TERM "$SERVER_PID"
status=0
wait "$SERVER_PID" || status=$?
SERVER_PID=""
tail -2 "$LOG"
clean=$(grep -c "Application shutdown complete" "$LOG" || true)
rm -f "$LOG"
# uvicorn re-raises the SIGTERM it handled once it has shut down: 143 (128 + 15) outside a container, 0 as PID 1
case "$status:$clean" in 0:1 | 143:1) ;; *)
  echo "FAIL: after SIGTERM the service exited with status $status without a clean shutdown" >&2; exit 1 ;; esac
echo "== GPU check passed"
