# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Python 3.12 is required (garminconnect needs it); pyenv picks it from .python-version.
PYTHON ?= $(shell command -v python3.12 2>/dev/null || command -v python3 2>/dev/null || echo python)
VENV := .venv
BIN := $(VENV)/bin
DEMO_HOME := out/demo-home
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck bench bench-limiters clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Python >= 3.12 is required; found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on the bundled sample data: import, analyse, write a plan into out/.
demo: $(STAMP)
	rm -rf $(DEMO_HOME)
	mkdir -p out
	STRIDEWISE_HOME=$(DEMO_HOME) $(BIN)/stridewise import tests/fixtures/fit
	STRIDEWISE_HOME=$(DEMO_HOME) $(BIN)/stridewise activities
	STRIDEWISE_HOME=$(DEMO_HOME) $(BIN)/stridewise analyze
	for f in html text md ics fit json; do \
	  STRIDEWISE_HOME=$(DEMO_HOME) $(BIN)/stridewise plan --format $$f --out out || exit 1; \
	done

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/import_speed.py
	$(BIN)/python bench/stream_storage.py
	$(BIN)/python bench/analyze_speed.py
	$(BIN)/python bench/track_parse.py

# Accuracy, not speed: the limiter model on generators it was not trained on (docs/model.md).
bench-limiters: $(STAMP)
	$(BIN)/python bench/limiter_generators.py

clean:
	rm -rf $(VENV) out build dist *.egg-info
