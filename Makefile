# One venv under .venv, created and filled from pyproject.toml on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean browser

# The project's own modules are installed editable, so pip compiles no bytecode for them, and where
# PYTHONDONTWRITEBYTECODE is set (as on this machine) Python never caches it: every process — the OMS, each
# strategy, the demo's and the tests' subprocesses — would compile ~300 modules from source at its start
# (the OMS's imports: 1.15 -> 1.01 s of CPU, bench/RESULTS.md). compileall writes what is missing or stale
# and returns at once otherwise (the image's wheel install compiles them itself).
install: $(VENV)/.installed
	@$(BIN)/python -m compileall -q -j 0 broker_core oms strategies trader

# The packages go in with uv, installed into the venv from PyPI first (a fresh venv in ~9 s here; pip
# resolved the same versions in ~55 s); should uv not install or not run, pip does it as before.
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	{ $(BIN)/python -m pip install -q 'uv>=0.4' && \
	  $(BIN)/python -m uv pip install -q --python $(BIN)/python -e '.[test,alpaca]'; } || \
	{ $(BIN)/python -m pip install -q --upgrade pip && $(BIN)/python -m pip install -q -e '.[test,alpaca]'; }
	touch $@

demo: install
	$(BIN)/trader demo

# The browser tests drive Debian's Chromium; installed here when missing (they fail naming it otherwise).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -q && apt-get install -y -q chromium chromium-driver; } || \
	  echo "chromium and chromium-driver are not installed: the browser tests will fail naming them"

# Two workers (this machine has two cores); the multi-process runs share one worker (tests/conftest.py).
# The 15 slowest tests are listed at the end: the whole run must stay under 10 minutes here.
# While mypy runs (one core, ~33 s from a clean clone), a collection on the other core writes pytest's
# assertion-rewritten test modules to __pycache__ (PYTHONDONTWRITEBYTECODE, set on this machine, would stop
# it): each worker then collects in ~9 s instead of ~16 s. Its failure is pytest's to report, below.
test: install browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -p no:cacheprovider --collect-only >/dev/null 2>&1 & \
	  $(BIN)/mypy; status=$$?; wait; exit $$status
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup --durations=15

# Figures of issue 21 (printed, never asserted): the load generator on core 0, the OMS on the other core.
# About ten minutes (the demo alone is ~4); bench/RESULTS.md keeps the before/after table.
bench: install
	$(BIN)/python bench/replay_throughput.py --resting 200
	$(BIN)/python bench/intents.py --spawn sqlite --rate 500 --duration 10
	$(BIN)/python bench/intents.py --spawn postgres --rate 500 --duration 10
	$(BIN)/python bench/intents.py --spawn sqlite --saturate --rate 400 --step-duration 3
	$(BIN)/python bench/intents.py --spawn postgres --saturate --rate 400 --step-duration 3
	$(BIN)/python bench/oms_start.py --db both --repeats 3 --intents 10000
	$(BIN)/python bench/fill_stream.py --db sqlite --orders 40
	$(BIN)/python bench/fill_stream.py --db postgres --orders 40
	$(BIN)/python bench/demo_time.py

clean:
	rm -rf $(VENV) runs .pytest_cache
