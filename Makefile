# `make demo` and `make test` work on a fresh machine with only Python and pip: the first call
# creates .venv and installs custseg into it; later calls reinstall only when pyproject.toml changed.
# The tests also need Debian's chromium (the report test opens report.html in it), a Java runtime
# (the Spark engine tests) and PostgreSQL's server programs (the database tests): `make test` installs
# them with apt-get when they are missing. `make docs` builds the documentation site into site/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint bench test-packages docs strip

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark,docs]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/custseg demo --out demo-out

test-packages:
	scripts/install-test-packages

test: $(VENV)/.installed test-packages
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed test-packages
	$(BIN)/python -m pytest -m "not realdata"

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks

docs: $(VENV)/.installed
	$(BIN)/mkdocs build --strict

# Outputs of docs/tutorial.ipynb stay out of the repository (tests/test_tutorial.py checks it).
strip: $(VENV)/.installed
	$(BIN)/nbstripout docs/tutorial.ipynb
