# gvae-serve: `make serve` serves the bundled model, `make test` runs the test suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?= ~/.cache/gvae-serve/data
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv test serve train lint bench clean

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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
