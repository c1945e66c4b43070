# Two commands do all the set-up:  `make serve`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Whole files per xdist worker: module-scoped topologies and servers (tests/e2e/test_multi_process.py starts
# seven processes) then start once, not once per worker that gets one of their tests. Three workers on two cores:
# the end-to-end tests mostly wait on their servers and steps (the suite used 1.1 cores with two).
PYTEST_ARGS ?= -n 3 --dist loadfile
# The kfp 2.x SDK's tests run from a venv of their own: kfp 2 and kfp 1.8 need different protobufs.
KFP2_VENV ?= .venv-kfp2
KFP2_BIN := $(KFP2_VENV)/bin

.PHONY: serve test test-kfp2 lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

$(KFP2_BIN)/python:
	$(PYTHON) -m venv $(KFP2_VENV)
	$(KFP2_BIN)/pip install --quiet --upgrade pip

# The server itself installs beside kfp 2 (pip check proves the pins agree): the tests start it from this venv.
$(KFP2_VENV)/.installed: pyproject.toml | $(KFP2_BIN)/python
	$(KFP2_BIN)/pip install --quiet -e '.[test-kfp2]'
	$(KFP2_BIN)/pip check
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## serve: install, migrate and serve the v1beta1 API on 127.0.0.1:8888 with SQLite under ./.kfp-backend/
serve: install
	$(BIN)/kfp-backend db upgrade
	$(BIN)/kfp-backend serve

## test: install the test extras and run ruff, the whole suite, then the kfp 2.x SDK's tests (tests/kfp2)
# The main suite needs the kfp 2 venv too: it compiles kfp 2.x pipelines there for the IR execution tests.
test: install-test $(KFP2_VENV)/.installed lint
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) test-kfp2

## test-kfp2: the kfp 2.x SDK against a live server, from its own venv
test-kfp2: $(KFP2_VENV)/.installed
	$(KFP2_BIN)/pytest tests/kfp2

lint: install-test
	$(BIN)/ruff check kfp_backend tests bench

clean:
	rm -rf $(VENV) $(KFP2_VENV) .pytest_cache .ruff_cache *.egg-info
