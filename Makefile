# Set-up and checks for a fresh machine with Python >= 3.10 and pip.
#   make demo   create .venv, install sirst-synth, run the demo pipeline (examples/Makefile)
#   make test   create .venv, install sirst-synth with its [train,test] extras, run the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch is enough for the tests; on a GPU machine install the torch build
# matching your CUDA first (https://pytorch.org), then `pip install -e ".[train]"`.
TORCH  ?= torch==2.13.0

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: $(BIN)/python setup.cfg setup.py
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.full: $(VENV)/.core
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[train,test]"
	touch $@

demo: $(VENV)/.core
	$(MAKE) -C examples SIRST_SYNTH="$(abspath $(BIN))/sirst-synth"

test: $(VENV)/.full
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) examples/demo-out
