# pitill: `make sim` runs the simulator, `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data

WEB ?= 127.0.0.1:8580

.PHONY: sim sim-web test lint typecheck pytest bench bench-quick gallery wiring diagram clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

sim: $(STAMP)
	$(BIN)/pitill sim --data-dir $(DATA_DIR)

sim-web: $(STAMP)  ## the simulator driven from a web page (workshops); WEB=0.0.0.0:8580 for a room
	$(BIN)/pitill sim --no-tui --web $(WEB) --data-dir $(DATA_DIR)

test: lint typecheck bench-quick pytest

lint: $(STAMP)
	$(BIN)/ruff check firmware tests tools
	$(BIN)/ruff format --check firmware tests tools

typecheck: $(STAMP)
	$(BIN)/mypy --strict firmware/pitill

pytest: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)  ## the benchmark suite P1-P8 (about 13 minutes): one table, into docs/bench.md and README
	$(BIN)/python tools/bench/run.py --write-docs

bench-quick: $(STAMP)  ## the same suite on small sizes, no verdicts: checks the bench still runs
	$(BIN)/python tools/bench/run.py --quick

gallery: $(STAMP)  ## regenerate docs/screens/*.png and docs/demo.gif from the real renderer
	$(BIN)/python tools/record-demo

wiring: $(STAMP)  ## regenerate hw/wiring.png and the keypad label
	$(BIN)/python tools/draw-wiring

diagram: $(STAMP)  ## print the state chart generated from the transition table
	$(BIN)/pitill diagram

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
