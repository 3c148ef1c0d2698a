# Two commands: `make test` (and, later, `make demo`). Both set up .venv on first use.
PYTHON ?= python3.11
TORCH_VERSION := 2.13.0
# Where the CPU build comes from when the machine's own pip sources lack it.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export AXOLOTL_DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1
export WANDB_MODE := disabled

.PHONY: test lint format clean

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Without CUDA, torch is pinned to the CPU build first so that no dependency can pull
# a multi-GB CUDA build; re-runs skip this until pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	@if command -v nvidia-smi >/dev/null 2>&1; then \
		echo "CUDA found: installing the default torch $(TORCH_VERSION) build"; \
		$(BIN)/pip install "torch==$(TORCH_VERSION)"; \
		$(BIN)/pip install -e ".[dev]"; \
	else \
		echo "no CUDA: pinning torch==$(TORCH_VERSION)+cpu"; \
		echo "torch==$(TORCH_VERSION)+cpu" > $(VENV)/constraints-cpu.txt; \
		$(BIN)/pip install --no-index --no-deps "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
			|| $(BIN)/pip install --no-deps --extra-index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)+cpu"; \
		$(BIN)/pip install -c $(VENV)/constraints-cpu.txt -e ".[dev]"; \
	fi
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
