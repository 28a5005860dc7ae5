# One entry point for humans and CI. Every target creates .venv on first use.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint fmt clean chromium bench chaos

# The web UI's browser tests need Debian's chromium. `make test` installs it first
# only as root or in CI (CI=true); elsewhere those tests skip, saying why.
CHROMIUM_STEP := $(if $(or $(filter true,$(CI)),$(filter 0,$(shell id -u))),chromium)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/perdure demo

# (dpkg --configure -a first: a machine may come with an interrupted dpkg, which
# makes every apt-get install fail; it does nothing otherwise. Seen in session 50.)
chromium:
	command -v chromium || (dpkg --configure -a && apt-get update && apt-get install -y chromium)

# The suite runs in four processes (pytest-xdist): its tests spend much of
# their time waiting on worker processes, the disk and timers, so more than
# two fill the two cores' gaps (session 50, one machine, back to back: 500 s
# in two, 385 s in three; session 45: 742 s in one; session 67, 3,805 tests:
# 561-594 s in three, the cores idle 17% of the time, 532-552 s in four,
# idle 7-8%). TEST_PROCESSES=0 runs it in one.
# The tests start hundreds of `perdure` processes (the CLI, workers, the
# chaos fleet). With PYTHONDONTWRITEBYTECODE set (as on some CI machines),
# each compiled perdure's modules from source again: 0.11 s of a 0.47 s
# command (session 54). Compiled once here, they are read from __pycache__
# (the flag stops writing, not reading).
TEST_PROCESSES ?= 4
test: $(STAMP) $(CHROMIUM_STEP)
	$(BIN)/python -m compileall -q -j 0 src tests examples > /dev/null
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES)

# Benchmarks are run by hand: `make bench` (perdure on SQLite and PostgreSQL),
# `make bench PEERS=1` (also DBOS and Restate, same run), `make bench QUICK=1`.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet 'matplotlib>=3.7'
	$(BIN)/python benchmarks/run.py $(if $(PEERS),--peers) $(if $(QUICK),--quick)

# The long crash-fuzzing run (by hand): `make chaos`, `PERDURE_CHAOS_SECONDS=900 make chaos`.
chaos: $(STAMP)
	PERDURE_CHAOS_SECONDS=$${PERDURE_CHAOS_SECONDS:-300} $(BIN)/python -m pytest -q -s tests/chaos -m chaos_long

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests examples benchmarks
	$(BIN)/ruff check --fix src tests examples benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
