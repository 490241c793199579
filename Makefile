# The two commands: `make run` (install + the main job) and `make test`.
# Installs are stamped so a second call costs seconds, not minutes.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu-demo

.PHONY: install run test check lint lock clean-state

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock requirements-assets.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.lock
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --require-hashes -r requirements-assets.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/mentor run --profile $(PROFILE)

# Two workers (pytest-xdist), one test file each at a time: end-to-end files keep their order,
# and the 2-core machine stays busy while a server-backed test waits on I/O.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Style the tools enforce (CI runs this before the tests): formatting, lint, types.
CHECKED := components flows tests benchmarks
check: $(STAMP)
	$(VENV)/bin/ruff format --check $(CHECKED)
	$(VENV)/bin/ruff check $(CHECKED)
	$(VENV)/bin/mypy components flows

lint: check

# Regenerate the lock from a fresh resolve of pyproject's windows (maintainers only).
lock:
	rm -rf /tmp/mentor-lock-venv && $(PYTHON) -m venv /tmp/mentor-lock-venv
	/tmp/mentor-lock-venv/bin/pip install -q "torch==2.13.0" ".[dev]"
	/tmp/mentor-lock-venv/bin/pip freeze | grep -v -i -E '^(mentor[-_]pipeline|bfcl[-_]eval|llm[-_]smollm2|pandas[-_]sns|-e )' | sed 's/+cpu$$//' > requirements.lock

clean-state:
	rm -rf .mentor outputs
