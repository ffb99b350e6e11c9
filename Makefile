# simcode: set-up, tests and the main job. Needs Python >= 3.11 (python3 on PATH, or PYTHON=...).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test sweep bench lint clean

# torch is installed first and pinned to the CPU build; an unpinned torch would pull CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# The real-backend tests start their own Ray session and learner processes: they run in a pytest
# process of their own, bounded in time, so that nothing another module left behind can stall them.
test: setup
	$(BIN)/python -m pytest --ignore=tests/test_real_backend.py
	timeout 600 $(BIN)/python -m pytest tests/test_real_backend.py

sweep: setup
	$(BIN)/simcode study straggler_sweep --quick --out runs/study-straggler_sweep-quick

bench: setup
	$(BIN)/python benchmarks/run_all.py

lint: setup
	$(BIN)/ruff check simcode tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
