PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install install-test run test lint typecheck bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(VENV)/bin/prefork examples.hello:app --workers auto --bind 127.0.0.1:8000

test: install-test
	$(VENV)/bin/ruff check prefork tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint: install-test
	$(VENV)/bin/ruff check prefork tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info
