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

# The demo athlete: a seeded 12-week season written as FIT files by our own simulator and
# encoder, imported and planned week by week; then every output into out/ (docs/plans.md).
# The dry-run e-mail needs a sender address; nothing is sent.
DEMO := STRIDEWISE_HOME=$(DEMO_HOME) STRIDEWISE_SMTP_FROM="stridewise demo <coach@example.org>" \
  $(BIN)/stridewise
DEMO_WEEK := 2026-W48
demo: $(STAMP)
	rm -rf $(DEMO_HOME) out/demo-fit
	mkdir -p out
	$(DEMO) demo --fit-dir out/demo-fit
	$(DEMO) activities --athlete demo | tail -n 5
	$(DEMO) analyze --athlete demo --plots out/
	$(DEMO) progress --athlete demo --plot out/progress.png | tee out/progress.txt
	# The week's plan is stored already: these only read, so they share the two cores.
	pids=""; \
	for f in html text md ics fit json; do \
	  $(DEMO) plan --athlete demo --week $(DEMO_WEEK) --format $$f --out out & pids="$$pids $$!"; \
	done; \
	$(DEMO) send-weekly --athlete demo --week $(DEMO_WEEK) --dry-run --out out & pids="$$pids $$!"; \
	for p in $$pids; do wait $$p || exit 1; done
	@echo
	@echo "Open first: out/plan-$(DEMO_WEEK).html (the plan), then out/progress.png (is it working?)."

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
	$(BIN)/python bench/progress_speed.py
	$(BIN)/python bench/track_parse.py
	$(BIN)/python bench/roster_speed.py

# Accuracy, not speed: the limiter model on generators it was not trained on (docs/model.md).
bench-limiters: $(STAMP)
	$(BIN)/python bench/limiter_generators.py

clean:
	rm -rf $(VENV) out build dist *.egg-info
