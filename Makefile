# gvae-serve: `make serve` serves the bundled model, `make test` runs the test suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= ~/.cache/gvae-serve/data
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv test serve train lint bench bench-serve clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

serve: $(STAMP)
	$(PY) -m service --host $(HOST) --port $(PORT)

# Train a new version into the store; extra flags via TRAIN_ARGS="--epochs 100 --hard ..."
train: $(STAMP)
	$(PY) -m training --data-dir $(DATA_DIR) $(TRAIN_ARGS)

bench: $(STAMP)
	$(PY) bench/train_speed.py

# Serving throughput against a bare FastAPI ceiling and a naive service (~5 min; table in docs/bench-serve.md)
bench-serve: $(STAMP)
	$(PY) bench/serve_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# ---------------------------------------------------------------------------------------- deployment
.PHONY: lint-deploy container-test gpu-check
DEPLOY_STAMP := $(VENV)/.installed-deploy
K8S_MANIFESTS := $(filter-out %/kustomization.yaml,$(wildcard deploy/k8s/*.yaml))
PODMAN_ENV ?= ../shared/tools/podman-env.sh

$(DEPLOY_STAMP): $(STAMP) requirements-deploy.txt
	$(PY) -m pip install -q -r requirements-deploy.txt
	touch $(DEPLOY_STAMP)

# The Dockerfile (hadolint) and the Kubernetes manifests (offline schemas; --strict: unknown fields fail)
lint-deploy: $(DEPLOY_STAMP)
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/kubernetes-validate --strict --quiet $(K8S_MANIFESTS)
	@echo "lint-deploy: Dockerfile and $(words $(K8S_MANIFESTS)) manifests OK"

# Builds and runs the image (scripts/container_smoke.sh), with $$CONTAINER, docker or podman; where no engine
# is set and $(PODMAN_ENV) exists, sources it first. Exits 0 with a SKIPPED line when there is no engine.
container-test:
	@bash -c 'if [ -z "$${CONTAINER:-}" ] && [ -f "$(PODMAN_ENV)" ]; then \
	    source "$(PODMAN_ENV)" || echo "container-test: $(PODMAN_ENV) failed; looking for docker or podman"; fi; \
	  scripts/container_smoke.sh; rc=$$?; \
	  if [ $$rc -eq 77 ]; then echo "container-test: SKIPPED (no container engine)"; exit 0; fi; exit $$rc'

# On a CUDA machine: the service on the GPU, every route, batched decode throughput (fails without CUDA)
gpu-check: $(STAMP)
	PYTHON=$(PY) scripts/gpu_check.sh
