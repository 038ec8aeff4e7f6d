#!/usr/bin/env bash
# Builds the container image, runs it, and checks it as a client and an orchestrator would:
# waits for /readyz, fetches /v1/sample (a valid PNG), POSTs a PNG to /v1/reconstruct (and calls every other
# route), runs the image's HEALTHCHECK, then stops the container with SIGTERM and checks that it shuts down
# cleanly (lifespan shutdown logged, not killed) within the stop grace period.
#
#   scripts/container_smoke.sh                         # docker or podman, whichever works, or $CONTAINER
#   source ../shared/tools/podman-env.sh && scripts/container_smoke.sh     # on a machine without Docker
#   make container-test                                # the same, sourcing podman-env.sh when it exists
#
# Environment (all optional):
#   CONTAINER     engine command, e.g. "podman --root /var/tmp/podman-root" (default: docker, else podman)
#   BASE_IMAGE    the Dockerfile's base (default: $LOCAL_BASE_IMAGE when set, else the Dockerfile's python:3.11-slim)
#   IMAGE         tag to build and run (default gvae-serve:smoke)
#   SMOKE_STORE   auto | bundled | volume: serve the model baked into the image, or a small seeded model from a
#                 store mounted at /models (auto: bundled when the image holds a version, else volume)
#   SMOKE_PORT    host port (default: a free one); STOP_GRACE seconds before SIGKILL (default 10, Docker's)
#   READY_TIMEOUT seconds to wait for /readyz (default 300); SKIP_BUILD=1 reuses $IMAGE as it is
# Exit status: 0 passed, 1 failed, 77 skipped (no container engine here).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-gvae-serve:smoke}
SMOKE_STORE=${SMOKE_STORE:-auto}
STOP_GRACE=${STOP_GRACE:-10}
READY_TIMEOUT=${READY_TIMEOUT:-300}
NAME=gvae-smoke-$$
say() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------- engine
if [ -z "${CONTAINER:-}" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then CONTAINER=docker
  elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then CONTAINER=podman
  else
    echo "SKIP: no container engine: neither a running Docker engine nor a working podman, and \$CONTAINER is unset" \
         "(on a machine like the CI's: source ../shared/tools/podman-env.sh, or run make container-test)"
    exit 77
  fi
fi
read -r -a ENGINE <<< "$CONTAINER"
case "${ENGINE[0]}" in *podman*) PODMAN=1 ;; *) PODMAN=0 ;; esac
say "engine: $CONTAINER"

STORE_DIR=""
cleanup() {
  "${ENGINE[@]}" rm -f "$NAME" >/dev/null 2>&1 || true
  [ -n "$STORE_DIR" ] && rm -rf "$STORE_DIR"
  return 0
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # a CI timeout still removes the container

# ----------------------------------------------------------------------------------------------- build
# podman can mount host folders into a build: let pip read the wheel folders and file:// indexes that pip on
# this machine is configured with (mounted at the same paths), so the build doesn't download gigabytes of CUDA
# wheels again. Docker builds use PyPI (or whatever PIP_* build args CI passes).
local_pip_sources() {
  python3 -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.\(find-links\|extra-index-url\)='\(.*\)'$/\1 \2/p"
  [ -n "${LOCAL_WHEELS:-}" ] && echo "find-links $LOCAL_WHEELS"
  return 0
}
BUILD_ARGS=(--build-arg "VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)"
            --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
            --build-arg "SOURCE_URL=$(git remote get-url origin 2>/dev/null || echo "file://$PWD")")
[ -n "${BASE_IMAGE:-${LOCAL_BASE_IMAGE:-}}" ] && BUILD_ARGS+=(--build-arg "BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE_IMAGE}")
if [ "$PODMAN" = 1 ]; then
  BUILD_ARGS+=(--network host --format docker)  # docker format keeps the HEALTHCHECK (OCI has no such field)
  find_links=() extra_index=() mounts=()
  while read -r kind values; do
    for value in $values; do
      path=${value#file://}
      [ -d "$path" ] || continue  # only what lies on this machine's disk
      if [ "$kind" = find-links ]; then mount=$path; find_links+=("$path")
      else mount=$(dirname "$path"); extra_index+=("file://$path"); fi  # PEP 503 pages link to ../../files/
      for m in "${mounts[@]}"; do case "$mount/" in "$m"/*) continue 2 ;; esac; done
      mounts+=("$mount")
    done
  done < <(local_pip_sources)
  for m in "${mounts[@]}"; do BUILD_ARGS+=(-v "$m:$m:ro"); done
  [ ${#find_links[@]} -gt 0 ] && BUILD_ARGS+=(--build-arg "PIP_FIND_LINKS=$(printf '%s\n' "${find_links[@]}" | sort -u | xargs)")
  [ ${#extra_index[@]} -gt 0 ] && BUILD_ARGS+=(--build-arg "PIP_EXTRA_INDEX_URL=$(printf '%s\n' "${extra_index[@]}" | sort -u | xargs)")
fi
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  say "SKIP_BUILD=1: using $IMAGE as it is"
else
  say "build $IMAGE: ${ENGINE[0]} build ${BUILD_ARGS[*]} -t $IMAGE ."
  start=$(date +%s)
  "${ENGINE[@]}" build "${BUILD_ARGS[@]}" -t "$IMAGE" . || fail "the image did not build"
  say "build time: $(( $(date +%s) - start )) s"
fi
size=$("${ENGINE[@]}" image inspect --format '{{.Size}}' "$IMAGE")
say "image size: $(( size / 1000000 )) MB ($size bytes)"

# ------------------------------------------------------------------------------------- static checks
user=$("${ENGINE[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")
[ "$user" = 10001:10001 ] || fail "the image runs as '$user', expected the non-root 10001:10001"
"${ENGINE[@]}" image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q readyz \
  || fail "the image has no HEALTHCHECK against /readyz"
# no compilers and no pip/apt caches in the final image; does it hold a model version?
bundled=$("${ENGINE[@]}" run --rm --no-healthcheck --network none --user 0 "$IMAGE" sh -c '
  for tool in gcc cc g++ make; do command -v $tool >/dev/null && echo "build tool: $tool" >&2 && exit 1; done
  for cache in /root/.cache/pip /home/gvae/.cache/pip /tmp/requirements.txt; do
    [ -e $cache ] && echo "left in the image: $cache" >&2 && exit 1; done
  ls /app/model_store/store/gvae/versions 2>/dev/null | grep -c "^[0-9]" || true') \
  || fail "the image keeps build tools or caches"
say "runs as $user, has a HEALTHCHECK, no build tools or caches; bundled versions of gvae: $bundled"

# ---------------------------------------------------------------------------------------------- store
RUN_ARGS=()
if [ "$SMOKE_STORE" = volume ] || { [ "$SMOKE_STORE" = auto ] && [ "$bundled" = 0 ]; }; then
  STORE_DIR=$(mktemp -d /var/tmp/gvae-smoke-store.XXXXXX)
  chmod 755 "$STORE_DIR"
  say "serving a seeded model from a store mounted at /models (GVAE_STORE_ROOT=/models)"
  "${ENGINE[@]}" run --rm --no-healthcheck --network none --user 0 -v "$STORE_DIR:/models" -e GVAE_STORE_ROOT=/models "$IMAGE" \
    python -c 'import torch; from model_store import GumbelVAE, ModelStore, VAEConfig
torch.manual_seed(0)
store = ModelStore()
with store.register("gvae") as draft:
    draft.save_weights(GumbelVAE(VAEConfig()))
store.set_alias("gvae", "production", 1)' || fail "could not write a seeded model into the volume"
  chmod -R a+rX "$STORE_DIR"
  RUN_ARGS+=(-v "$STORE_DIR:/models:ro" -e GVAE_STORE_ROOT=/models -e GVAE_MODEL_VERSION=production)
elif [ "$bundled" = 0 ]; then
  fail "SMOKE_STORE=bundled but the image holds no version of gvae (model_store/store/gvae/versions is empty)"
else
  say "serving the bundled model"
fi

# ------------------------------------------------------------------------------------------------ run
PORT=${SMOKE_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
if [ "$PODMAN" = 1 ]; then  # this sandbox's podman has no port forwarding: host network, loopback, our port
  RUN_ARGS+=(--network host -e GVAE_HOST=127.0.0.1 -e "GVAE_PORT=$PORT")
else  # what a user runs: the image's own 0.0.0.0:8000, published on the host's loopback
  RUN_ARGS+=(-p "127.0.0.1:$PORT:8000")
fi
say "run: ${ENGINE[0]} run -d --name $NAME ${RUN_ARGS[*]} $IMAGE"
"${ENGINE[@]}" run -d --name "$NAME" "${RUN_ARGS[@]}" "$IMAGE" >/dev/null || fail "the container did not start"
start=$(date +%s)
until python3 scripts/probe_service.py "http://127.0.0.1:$PORT" --wait 2 >/dev/null 2>&1; do
  state=$("${ENGINE[@]}" inspect --format '{{.State.Status}}' "$NAME")
  if [ "$state" != running ]; then "${ENGINE[@]}" logs "$NAME" | tail -30; fail "the container stopped ($state)"; fi
  if [ $(( $(date +%s) - start )) -gt "$READY_TIMEOUT" ]; then
    "${ENGINE[@]}" logs "$NAME" | tail -30; fail "not ready after $READY_TIMEOUT s"
  fi
done
say "ready after $(( $(date +%s) - start )) s"
python3 scripts/probe_service.py "http://127.0.0.1:$PORT" --all || { "${ENGINE[@]}" logs "$NAME" | tail -30; fail "HTTP checks"; }

if [ "$PODMAN" = 1 ]; then
  "${ENGINE[@]}" healthcheck run "$NAME" || fail "the image's HEALTHCHECK reports unhealthy"
else
  for _ in $(seq 60); do
    health=$("${ENGINE[@]}" inspect --format '{{.State.Health.Status}}' "$NAME")
    [ "$health" = healthy ] && break
    sleep 1
  done
  [ "$health" = healthy ] || fail "HEALTHCHECK status: $health"
fi
say "HEALTHCHECK: healthy"

# ----------------------------------------------------------------------------------------------- stop
start=$(date +%s.%N)
"${ENGINE[@]}" stop -t "$STOP_GRACE" "$NAME" >/dev/null
took=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
code=$("${ENGINE[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")
logs=$("${ENGINE[@]}" logs "$NAME" 2>&1)
echo "$logs" | tail -4
# the service exits 0 after a graceful stop (service/__main__.py); 143 (128 + 15) is still accepted, for older images
case "$code" in 0 | 143) ;; *) fail "after SIGTERM the container exited with status $code in $took s (137: killed at the grace)" ;; esac
echo "$logs" | grep -q "Application shutdown complete" || fail "no clean lifespan shutdown in the logs"
python3 -c "import sys; sys.exit(float(sys.argv[1]) >= float(sys.argv[2]))" "$took" "$STOP_GRACE" \
  || fail "stopping took $took s, not under the $STOP_GRACE s grace"
say "SIGTERM: clean shutdown, exit status $code in $took s (grace $STOP_GRACE s)"
say "container smoke test passed"
