# ditgaze: the two commands are `make repro` (the main job) and `make test` (what CI runs).
# Both work from a fresh clone with nothing but Python 3.11: they create .venv and install first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# torch goes in first, on its own: the CPU wheel here; a GPU machine's existing torch is kept.
TORCH_SPEC ?= torch==2.13.0
KERNEL ?= ditgaze

# caches stay inside the repo (ignored by git), never in $HOME
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export DVC_NO_ANALYTICS := 1
# DVC stages call `python`: make it the venv's
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test repro lab sync-check nbtest pytest export clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: settings.ini setup.py scripts/install.sh
	@bash scripts/timed.sh install bash scripts/install.sh "$(PYTHON)" "$(VENV)" "$(TORCH_SPEC)" "$(KERNEL)"
	@touch $@

# The README's test command; .ci/run runs exactly this.
test: install
	@bash scripts/timed.sh sync-check $(MAKE) --no-print-directory sync-check
	@bash scripts/timed.sh nbdev_test $(MAKE) --no-print-directory nbtest
	@bash scripts/timed.sh pytest $(MAKE) --no-print-directory pytest

# ditgaze/ must be what nbdev_export makes of nbs/, and every notebook must be clean.
sync-check: install
	@bash scripts/sync_check.sh "$(BIN)"

nbtest: install
	$(BIN)/nbdev_test --n_workers 2 --timing

pytest: install
	$(BIN)/python -m pytest tests/

# The README's main job: the DVC pipeline on the profile named in params.yaml.
repro: install
	@bash scripts/timed.sh "dvc repro" $(BIN)/dvc repro
	@$(BIN)/dvc status

lab: install
	$(BIN)/jupyter lab --notebook-dir=. --MultiKernelManager.default_kernel_name=$(KERNEL)

export: install
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

clean-venv:
	rm -rf $(VENV)
