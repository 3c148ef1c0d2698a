# Two commands: `make test` and `make demo`. Both set up their venv on first use.
# `make test-fast`: lint and the tests not marked `training` (no axolotl training run, a few minutes).
# Two tested stacks, one suite:
#   make test          .venv        Python 3.11, axolotl 0.19 (TRL 1.9), the CPU torch 2.13.0 build
#   make test-latest   .venv-latest Python 3.12, the newest axolotl the pyproject admits, torch from
#                                   the package index
# Every target takes the venv (VENV=...) and its interpreter (PYTHON=...), so `make demo VENV=.venv-latest`
# runs the demo on the newest stack.
PYTHON ?= python3.11
VENV ?= .venv
# The torch build pinned before anything else is installed; empty: whatever axolotl's pins resolve to.
TORCH_PIN ?= 2.13.0
# Where the CPU build comes from when the machine's own pip sources lack it.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# Python 3.12 for the newest stack: python3.12 on PATH, else pyenv's.
PYTHON_LATEST ?= $(shell command -v python3.12 >/dev/null 2>&1 && python3.12 -c '' 2>/dev/null && echo python3.12 \
	|| ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export AXOLOTL_DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1
export WANDB_MODE := disabled

# make demo: the whole product on a CPU. Paths and steps can be overridden (the test does).
TINY_MODEL ?= .tiny-model
DEMO_OUT ?= outputs/demo
PAIRED_STEPS ?= 120
UNPAIRED_STEPS ?= 160
LAUNCH := $(BIN)/accelerate launch --cpu --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no

.PHONY: test test-fast test-latest demo smoke lint format clean

# The suite is mostly axolotl trainings: one pytest worker per core, each process with one compute
# thread; tests/conftest.py schedules them (tests/README.md).
TEST_WORKERS ?= auto
PYTEST := $(BIN)/pytest -n $(TEST_WORKERS) --durations=10

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYTEST)

# Everything but the tests marked `training` (axolotl training runs, torch.distributed workers).
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(PYTEST) -m "not training"

test-latest:
	@test -n "$(PYTHON_LATEST)" || { echo "make test-latest needs Python 3.12: install it (pyenv install 3.12) or pass PYTHON_LATEST=/path/to/python3.12"; exit 2; }
	$(MAKE) test VENV=.venv-latest PYTHON=$(PYTHON_LATEST) TORCH_PIN=

demo: $(STAMP)
	@echo "== 1. the tiny local model"
	@test -f $(TINY_MODEL)/config.json || $(BIN)/python -m axolotl_aot.tools.tiny_model $(TINY_MODEL)
	@echo "== 2. the bundled paired set, converted to unpaired rows"
	$(BIN)/aot-cli convert-dataset axolotl_aot/data/parity_paired_train.jsonl $(DEMO_OUT)/parity_unpaired_train.jsonl --overwrite
	$(BIN)/aot-cli convert-dataset axolotl_aot/data/parity_paired_test.jsonl $(DEMO_OUT)/parity_unpaired_test.jsonl --overwrite
	sed -e 's#axolotl_aot/data/parity_unpaired_#$(DEMO_OUT)/parity_unpaired_#' -e 's#^base_model: .*#base_model: $(TINY_MODEL)#' \
		example_yamls/tiny/aot_unpaired.yml > $(DEMO_OUT)/aot_unpaired.yml
	sed 's#^base_model: .*#base_model: $(TINY_MODEL)#' example_yamls/tiny/aot.yml > $(DEMO_OUT)/aot.yml
	@echo "== 3. both configs, validated (validate checks that base_model exists)"
	$(BIN)/aot-cli validate $(DEMO_OUT)/aot.yml $(DEMO_OUT)/aot_unpaired.yml
	@echo "== 4. training: rl: aot, then rl: aot_unpaired"
	$(LAUNCH) -m axolotl.cli.train example_yamls/tiny/aot.yml --base_model $(TINY_MODEL) \
		--output_dir $(DEMO_OUT)/aot --dataset_prepared_path $(DEMO_OUT)/prepared-aot --max_steps $(PAIRED_STEPS)
	$(LAUNCH) -m axolotl.cli.train $(DEMO_OUT)/aot_unpaired.yml --base_model $(TINY_MODEL) \
		--output_dir $(DEMO_OUT)/aot_unpaired --dataset_prepared_path $(DEMO_OUT)/prepared-aot-unpaired \
		--max_steps $(UNPAIRED_STEPS)
	@echo "== 5. held-out report: rl: aot"
	$(BIN)/aot-cli report "$(DEMO_OUT)/aot/checkpoint-*" --config $(DEMO_OUT)/aot.yml \
		--data axolotl_aot/data/parity_paired_test.jsonl --out $(DEMO_OUT)/report-aot
	@echo "== 5. held-out report: rl: aot_unpaired"
	$(BIN)/aot-cli report "$(DEMO_OUT)/aot_unpaired/checkpoint-*" --config $(DEMO_OUT)/aot_unpaired.yml \
		--data $(DEMO_OUT)/parity_unpaired_test.jsonl --out $(DEMO_OUT)/report-aot-unpaired

# make smoke: `aot-cli smoke` on every example YAML; a failed row fails the target.
SMOKE_STEPS ?= 2
# The chat example trains on the rows docs/data.md's UltraFeedback walkthrough converts; the DPO
# baseline (tiny/dpo.yml, for comparing runs in `aot-cli report`) is not an AOT config.
smoke: $(STAMP)
	@test -f $(TINY_MODEL)/config.json || $(BIN)/python -m axolotl_aot.tools.tiny_model $(TINY_MODEL)
	@test -f outputs/ultrafeedback/train.jsonl || $(BIN)/aot-cli convert-dataset docs/ultrafeedback_train.jsonl \
		outputs/ultrafeedback/train.jsonl >/dev/null
	@for config in example_yamls/tiny/*.yml example_yamls/*.yml; do \
		if ! grep -qE '^rl: *aot' $$config; then echo "skipped $$config: not an AOT config"; continue; fi; \
		$(BIN)/aot-cli smoke $$config --steps $(SMOKE_STEPS) || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Without CUDA, TORCH_PIN's CPU build is installed first so that no dependency can pull a
# multi-GB CUDA build; with TORCH_PIN empty, pip resolves torch from axolotl's pins. Re-runs skip
# this until pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	@if [ -z "$(TORCH_PIN)" ]; then \
		echo "installing the newest stack the pyproject admits (torch from the package index)"; \
		$(BIN)/pip install -e ".[dev]"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
		echo "CUDA found: installing the default torch $(TORCH_PIN) build"; \
		$(BIN)/pip install "torch==$(TORCH_PIN)"; \
		$(BIN)/pip install -e ".[dev]"; \
	else \
		echo "no CUDA: pinning torch==$(TORCH_PIN)+cpu"; \
		echo "torch==$(TORCH_PIN)+cpu" > $(VENV)/constraints-cpu.txt; \
		$(BIN)/pip install --no-index --no-deps "torch==$(TORCH_PIN)+cpu" 2>/dev/null \
			|| $(BIN)/pip install --no-deps --extra-index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_PIN)+cpu"; \
		$(BIN)/pip install -c $(VENV)/constraints-cpu.txt -e ".[dev]"; \
	fi
	touch $@

clean:
	rm -rf .venv .venv-latest .pytest_cache .ruff_cache .hypothesis
