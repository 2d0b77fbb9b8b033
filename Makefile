# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment in .venv on first use (pinned versions, see requirements-dev.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt setup.cfg | cksum | cut -d' ' -f1)

.PHONY: setup test test-fast demo report clean

$(STAMP): requirements-dev.txt setup.cfg
	@bash tools/setup_env.sh "$(PYTHON)" "$(VENV)"
	@touch $@

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -x tests -m "not slow"

demo: $(STAMP)
	$(PY) tools/demo.py

report: $(STAMP)
	$(PY) tools/model_report.py --format md

clean:
	rm -rf $(VENV) .pytest_cache
