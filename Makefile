# The MLX performance workbook. `make` alone lists the targets.
#
# Each backend gets its own virtual env (.venv-cpu, .venv-metal, .venv-cuda13, ...): the CPU and CUDA builds
# of MLX ship the same library file, so two backends never share an env.
# PYTHON=python3 (or any interpreter that already has the requirements) skips the venv and installs nothing.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ifeq ($(shell uname -s),Darwin)
BACKEND ?= metal
else
BACKEND ?= cpu
endif
ifeq ($(wildcard requirements/$(BACKEND).txt),)
$(error unknown BACKEND=$(BACKEND); use cpu, metal, cuda13 or cuda12)
endif
VENV ?= .venv-$(BACKEND)
BOOTSTRAP_PYTHON ?= python3
PROFILE ?= auto
P ?=
PARAMS ?=
NB ?=

ifeq ($(origin PYTHON),undefined)
PYTHON := $(VENV)/bin/python
ENV_READY := $(VENV)/.installed
DEV_READY := $(VENV)/.installed-dev
else
ENV_READY :=
DEV_READY :=
endif

export PYTHONPATH := $(CURDIR)/lib$(if $(PYTHONPATH),:$(PYTHONPATH))
RUNNER = $(PYTHON) -m mlx_workbook.report.runner
RUN_ARGS = --profile $(PROFILE) $(if $(P),-p "$(P)") $(if $(PARAMS),--params-file $(PARAMS)) $(if $(OPEN),--open)

.PHONY: help reports report notebooks index lab test lint format compare findings fidelity browser clean clean-all env

help: ## Show the targets
	@echo "MLX performance workbook. Variables: BACKEND=cpu|metal|cuda13|cuda12 PROFILE=auto|quick|full|test"
	@echo '  P="name=value ..." PARAMS=overrides.yaml NB=<notebook> OPEN=1 (open the index) PYTHON=<interpreter, skips the venv>'
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements/$(BACKEND).txt pyproject.toml
	@$(BOOTSTRAP_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed (BOOTSTRAP_PYTHON=$(BOOTSTRAP_PYTHON))" >&2; exit 2; }
	@$(BOOTSTRAP_PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "$(BOOTSTRAP_PYTHON) cannot create virtual envs (on Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 2; }
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements/$(BACKEND).txt -r requirements.txt
	$(VENV)/bin/python -m pip install -q --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements/dev.txt
	$(VENV)/bin/python -m pip install -q -r requirements/dev.txt
	@touch $@

env: $(ENV_READY) ## Create the backend's virtual env and install the pinned requirements
	@$(PYTHON) -c "from mlx_workbook.core import env; e = env.capture(); print(e.backend, e.device, 'mlx', e.mlx, 'mlx-lm', e.mlx_lm)"

reports: $(ENV_READY) ## Run every notebook (profile for this device), render HTML, rebuild reports/index.html
	$(RUNNER) reports $(RUN_ARGS)

report: $(ENV_READY) ## Run one notebook: make report NB=00_machine [P="repeats=5"]
	@test -n "$(NB)" || { echo 'usage: make report NB=<notebook> [P="name=value ..."]' >&2; exit 2; }
	$(RUNNER) report $(NB) $(RUN_ARGS)

notebooks: $(ENV_READY) ## Write the paired .ipynb of every notebook (for JupyterLab)
	$(RUNNER) notebooks

index: $(ENV_READY) ## Rebuild reports/index.html from the runs on disk
	$(RUNNER) index

# JupyterLab is installed once (the stamp below), not on every `make lab`. The file browser shows each notebook
# once, as its .ipynb: the paired jupytext .py (the source under version control) is hidden there, and
# jupytext keeps the two in sync on save (notebooks/jupytext.toml). As root, JupyterLab needs --allow-root.
LAB_READY := $(if $(ENV_READY),$(VENV)/.installed-lab)
LAB_HIDE := ["__pycache__", "*.pyc", "*.pyo", ".DS_Store", "*~", ".ipynb_checkpoints", "jupytext.toml", "[0-9][0-9]_*.py"]
LAB_ARGS ?=

$(VENV)/.installed-lab: $(VENV)/.installed requirements/lab.txt
	$(VENV)/bin/python -m pip install -q -r requirements/lab.txt
	@touch $@

lab: $(LAB_READY) notebooks ## Open JupyterLab on the notebooks, ready to run (LAB_ARGS="--no-browser --port=8899")
	$(PYTHON) -m jupyter lab --ServerApp.root_dir=notebooks --ContentsManager.hide_globs='$(LAB_HIDE)' \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

compare: $(ENV_READY) ## Compare two runs side by side: make compare A=<run dir or id> B=<run dir or id>
	@test -n "$(A)" -a -n "$(B)" || { echo 'usage: make compare A=<run dir or id> B=<run dir or id>' >&2; exit 2; }
	$(PYTHON) -m mlx_workbook.report.compare "$(A)" "$(B)"

findings: $(ENV_READY) ## Rebuild the findings page(s), the indexes and the README's findings block from stored runs
	$(PYTHON) -m mlx_workbook.report.findings_page

# The browser tests drive Debian's Chromium; without it (and without root to install it) they skip, saying why.
# Both presets run; the target fails when either verdict is not "holds".
fidelity: $(ENV_READY) ## Library vs mlx_lm.benchmark decode tok/s in paired blocks of alternating 16-token chunks, qwen3-0.6b and llama-3-8b bf16 (a GPU, up to ~160 s each)
	@rc=0; \
	$(PYTHON) bench/fidelity.py --preset qwen3-0.6b --gen-tokens 256 --prompt-tokens 128 --budget-s 150 || rc=1; \
	$(PYTHON) bench/fidelity.py --preset llama-3-8b --gen-tokens 256 --prompt-tokens 128 --budget-s 150 || rc=1; \
	exit $$rc

browser: ## Make sure headless Chromium is installed for the browser tests (apt-get, when run as root)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -q && apt-get install -y -q chromium) || echo "note: installing chromium failed; the browser tests will skip" >&2; \
	  else \
	    echo "note: chromium is not installed (install it: sudo apt-get install chromium); the browser tests will skip" >&2; \
	  fi; }

test: $(DEV_READY) browser lint ## Run the tests (lint, unit tests, every notebook through papermill on the smallest profile)
	$(PYTHON) -m pytest -q $(TESTS)

lint: $(DEV_READY) ## Check formatting and lint with ruff (make format rewrites the code)
	$(PYTHON) -m ruff format --check lib tests bench notebooks
	$(PYTHON) -m ruff check lib tests bench notebooks

format: $(DEV_READY) ## Format the code and apply ruff's safe fixes
	$(PYTHON) -m ruff format lib tests bench notebooks
	$(PYTHON) -m ruff check --fix lib tests bench notebooks

clean: ## Remove local runs, generated notebooks and build files (keeps reports/reference and the venvs)
	rm -rf reports/runs reports/index.html reports/.build reports/compare reports/timings.jsonl notebooks/*.ipynb
	rm -f reports/findings.html reports/findings.csv reports/findings_verdicts.svg
	find . -name __pycache__ -prune -exec rm -rf {} +

clean-all: clean ## Also remove every virtual env and cached MLX-version env
	rm -rf .venv-* .cache
