# Set-up and checks for a fresh machine with Python >= 3.11 and pip.
#   make demo   create .venv, install sirst-synth, run the demo pipeline (examples/Makefile)
#   make lint   ruff (lint + import order) and mypy over the package, tests and benchmarks
#   make test   create .venv, install sirst-synth with its [train,test,lint] extras, lint, run every test
#   make test-fast  the tests without a full-dataset build, a kill or a training subprocess (the edit-test loop)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# PyTorch for the trainer and its tests. The default wheel from PyPI works everywhere (it brings
# CUDA libraries, several GB). Without a GPU the CPU build is enough and far smaller:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# On a GPU machine pick the index of your CUDA version from https://pytorch.org/get-started.
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: demo lint test test-fast clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: $(BIN)/python setup.cfg setup.py
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.full: $(VENV)/.core
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[train,test,lint]"
	touch $@

demo: $(VENV)/.core
	$(MAKE) -C examples SIRST_SYNTH="$(abspath $(BIN))/sirst-synth"

lint: $(VENV)/.full
	$(BIN)/ruff check sirst_synth tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.full
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) examples/demo-out
