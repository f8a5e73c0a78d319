# Set-up and the two README commands. `make demo`, `make test` and `make docs` each create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/sepgzoo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: setup demo test docs bench gpu-check device-check
setup: $(BIN)/sepgzoo

demo: setup  ## train the synthetic recipe on CPU (~3 min on 2 cores, after the set-up), evaluate, print Rank-1/mAP
	$(BIN)/sepgzoo train --recipe synthetic

test: setup  ## the whole test suite (CPU, offline)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

SITE ?= /tmp/sepgzoo-site
docs: setup  ## the documentation site (mkdocs.yml, docs/), --strict: a broken link, anchor or nav entry fails; into $(SITE)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --clean -d $(SITE)

bench: setup  ## metric and training-step benchmarks (CPU here; run on a GPU machine for CUDA numbers)
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/sepgzoo bench train --steps 3
	$(BIN)/sepgzoo bench infer --iters 3

gpu-check: setup  ## GPU self-check on a CUDA machine (~3-5 min): writes runs/gpu-check-<time>/gpu-report.json + .md
	$(BIN)/sepgzoo doctor --gpu

# On a lent, offline GPU machine that has its own PyTorch: no venv, no network. Installs the project without
# dependencies where the build backend allows (else runs from the tree), then runs the self-check.
# CI runs it on CPU at tiny sizes: make device-check PYTHON=.venv/bin/python DEVICE_CHECK_ARGS="--device cpu --tiny"
DEVICE_CHECK_ARGS ?=
device-check:  ## GPU self-check with the Python already there (PYTHON=...): runs/device-check-<time>/gpu-report.json + .md
	@$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation --no-index -e . 2>/dev/null \
		|| echo "device-check: running sepgzoo from the source tree (not installed: the build backend needs setuptools >= 77)"
	PYTHONPATH=$(CURDIR) HF_HUB_OFFLINE=1 $(PYTHON) -m sepgzoo doctor --gpu --output runs/device-check-$$(date +%Y%m%d-%H%M%S) $(DEVICE_CHECK_ARGS)
