# Everything a fresh machine needs: `make demo` and `make test` build .venv from pyproject.toml themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Tests run on two workers by default (CI has 2 cores); override with `make test PYTEST_ARGS=...`.
PYTEST_ARGS ?= -n 2 --dist worksteal

.PHONY: help install demo test reliability lint typecheck format bench clean

help:
	@echo "make demo       index the bundled sample documents and answer queries (no Ollama needed)"
	@echo "make test       lint, type-check and run the whole test suite"
	@echo "make reliability  the failure scenarios of docs/reliability.md (also in make test)"
	@echo "make lint       ruff check + ruff format --check"
	@echo "make typecheck  mypy --strict on the package"
	@echo "make bench      run the benchmarks in benchmarks/ and print figures"
	@echo "make clean      remove .venv and caches"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,pdf,all-analyzers,notebook,faiss,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ollama-rag demo

lint: $(STAMP)
	$(BIN)/ruff check ollama_rag tests benchmarks
	$(BIN)/ruff format --check ollama_rag tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

reliability: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m reliability

format: $(STAMP)
	$(BIN)/ruff format ollama_rag tests benchmarks
	$(BIN)/ruff check --fix ollama_rag tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
