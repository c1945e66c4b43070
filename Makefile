# Two commands do all the set-up:  `make serve`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= -n 2

.PHONY: serve test lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## serve: install, migrate and serve the v1beta1 API on 127.0.0.1:8888 with SQLite under ./.kfp-backend/
serve: install
	$(BIN)/kfp-backend db upgrade
	$(BIN)/kfp-backend serve

## test: install the test extra and run ruff and the whole suite
test: install-test lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check kfp_backend tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
