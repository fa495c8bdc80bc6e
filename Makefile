# Two commands do all set-up on a fresh machine:
#   make train   – venv + install, fetch data, train LeNet-5 on Fashion-MNIST, print test accuracy
#   make test    – venv + install, then the test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONFIG ?= configs/classification/lenet5_fashion_mnist.yaml

.PHONY: install train test bench clean-logs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/visionsuite fit --config $(CONFIG)

test: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=25

bench: $(STAMP)
	$(PY) benchmarks/bench_training.py

clean-logs:
	rm -rf logs wandb
