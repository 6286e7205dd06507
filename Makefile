# Every target that runs code depends on `install`, so each is one command on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist
ARGS   ?=

.PHONY: install test test-slow demo sweep-demo distill lint format bench bench-steps study study-reports bench-cross-arch bench-released bench-precision full-cpu lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@if [ ! -d $(FMNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Fashion-MNIST (dataset-fashion-mnist)"; \
		apt-get update -q && apt-get install -y -q dataset-fashion-mnist; \
	fi
	touch $(STAMP)

# Re-resolve the newest versions pyproject.toml allows into constraints.txt (a scratch venv).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q -e '.[dev]'
	{ echo "# Exact versions 'make install' installs (pip constraints); refresh with 'make lock'."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt && rm -rf .venv-lock

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# Offline Fashion-MNIST: random real vs DM vs DM+HDD as released and recommended, one table.
demo: install
	$(PY) -m src.compare experiment=fashion_mnist_demo --losses euclidean lorentz lorentz_project \
		--seeds 0 --out outputs/demo

# A multirun sweep (IPC 1 and 10, DM vs DM+HDD, 2 seeds) and its results table.
sweep-demo: install
	$(PY) -m src.distill -m experiment=fashion_mnist_demo ipc=1,10 loss=euclidean,lorentz \
		seed=0,1 hydra.sweep.dir=multirun/demo_sweep
	$(PY) -m src.report multirun/demo_sweep --out multirun/demo_sweep

distill: install
	$(PY) -m src.distill $(ARGS)

lint: install
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench

format: install
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: install
	$(PY) -m bench

# Seconds per outer iteration of DM, DM+HDD, IDM, IDM+HDD side by side (a few minutes).
bench-steps: install
	$(PY) -m bench.step_time

# A study (conf/experiment/study/$(STUDY).yaml), niced and resumable per run; ARGS: more
# overrides (the config's header lists the grid's commands), then its reports.
study: install
	nice -n 10 $(PY) -m src.distill -m experiment=study/$(STUDY) $(ARGS)
	$(PY) -m src.report --study $(STUDY)

# Every committed study's tables, plots and README blocks, from their records (no training).
STUDIES ?= accuracy curvature pruning cross_arch_table dm_family
study-reports: install
	$(PY) -m src.report --study $(STUDIES)

# Cross-architecture evaluation against the single-architecture ones it replaces.
bench-cross-arch: install
	$(PY) -m bench.cross_arch $(ARGS)

# Seconds per DM-HDD iteration: the authors' released script (a checkout of Guang000/HDD at
# RELEASED) against ours eager and compiled, whole processes alternating (about 30 minutes).
bench-released: install
	$(PY) -m bench.released --released $(RELEASED) $(ARGS)

# float32 against bf16 autocast on this CPU (steps and gradient agreement), and how close one
# evaluation network comes to the CPU's arithmetic ceiling.
bench-precision: install
	$(PY) -m bench.precision $(ARGS)
	$(PY) -m bench.ceiling

# The full protocol on the CPU (20 000 iterations, 5 x 1000 epochs), niced and resumable;
# ARGS="ipc=1 loss=euclidean,lorentz" runs the IPC-1 half.
full-cpu: install
	nice -n 10 $(PY) -m src.distill -m experiment=study/fashion_mnist_full_cpu $(ARGS)
	$(PY) -m src.report --study fashion_mnist_full_cpu

clean:
	rm -rf outputs multirun
