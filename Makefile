# The two commands: `make run` (install + the main job) and `make test`.
# Installs are stamped so a second call costs seconds, not minutes.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu-demo
UV := $(VENV)/bin/uv
# Where PyTorch's CPU wheel lies (pip's find-links on these machines); uv does not read pip's config.
TORCH_WHEELS ?= $(or $(PIP_FIND_LINKS),/opt/wheels)
FIND_LINKS := $(if $(wildcard $(TORCH_WHEELS)),--find-links $(TORCH_WHEELS),)

.PHONY: install run test check lint lock clean-state

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock requirements-assets.txt requirements-uv.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --require-hashes -r requirements-uv.txt
	$(UV) pip install -q --python $(PY) --no-deps --require-hashes $(FIND_LINKS) -r requirements.lock -r requirements-assets.txt
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

# Regenerate the lock from a fresh resolve of pyproject's windows (maintainers only): pip resolves,
# uv hashes every pinned file, infra/lock/pin_local_wheels.py hashes the local torch CPU wheel.
lock:
	rm -rf /tmp/mentor-lock-venv && $(PYTHON) -m venv /tmp/mentor-lock-venv
	/tmp/mentor-lock-venv/bin/pip install -q "torch==2.13.0" ".[dev]"
	/tmp/mentor-lock-venv/bin/pip install -q --no-deps --require-hashes -r requirements-uv.txt
	/tmp/mentor-lock-venv/bin/pip freeze --all | grep -v -i -E '^(pip|uv|mentor[-_]pipeline|bfcl[-_]eval|llm[-_]smollm2|pandas[-_]sns|-e |#)' > /tmp/mentor-lock.in
	/tmp/mentor-lock-venv/bin/uv pip compile /tmp/mentor-lock.in --no-deps --generate-hashes --no-header $(FIND_LINKS) --python-version 3.11 -o requirements.lock
	/tmp/mentor-lock-venv/bin/python infra/lock/pin_local_wheels.py requirements.lock $(TORCH_WHEELS)

clean-state:
	rm -rf .mentor outputs
