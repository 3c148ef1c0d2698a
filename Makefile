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

# make demo: the whole product on a CPU. Paths and steps can be overridden (the test does).
TINY_MODEL ?= .tiny-model
DEMO_OUT ?= outputs/demo
PAIRED_STEPS ?= 120
UNPAIRED_STEPS ?= 160
LAUNCH := $(BIN)/accelerate launch --cpu --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no

.PHONY: test demo lint format clean

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

demo: $(STAMP)
	@echo "== 1. the tiny local model"
	@test -f $(TINY_MODEL)/config.json || $(BIN)/python -m axolotl_aot.tiny_model $(TINY_MODEL)
	@echo "== 2. the bundled paired set, converted to unpaired rows"
	$(BIN)/aot-cli convert-dataset axolotl_aot/data/parity_paired_train.jsonl $(DEMO_OUT)/parity_unpaired_train.jsonl --overwrite
	$(BIN)/aot-cli convert-dataset axolotl_aot/data/parity_paired_test.jsonl $(DEMO_OUT)/parity_unpaired_test.jsonl --overwrite
	sed 's#axolotl_aot/data/parity_unpaired_#$(DEMO_OUT)/parity_unpaired_#' example_yamls/tiny/aot_unpaired.yml > $(DEMO_OUT)/aot_unpaired.yml
	@echo "== 3. both configs, validated"
	$(BIN)/aot-cli validate example_yamls/tiny/aot.yml $(DEMO_OUT)/aot_unpaired.yml
	@echo "== 4. training: rl: aot, then rl: aot_unpaired"
	$(LAUNCH) -m axolotl.cli.train example_yamls/tiny/aot.yml --base_model $(TINY_MODEL) \
		--output_dir $(DEMO_OUT)/aot --dataset_prepared_path $(DEMO_OUT)/prepared-aot --max_steps $(PAIRED_STEPS)
	$(LAUNCH) -m axolotl.cli.train $(DEMO_OUT)/aot_unpaired.yml --base_model $(TINY_MODEL) \
		--output_dir $(DEMO_OUT)/aot_unpaired --dataset_prepared_path $(DEMO_OUT)/prepared-aot-unpaired \
		--max_steps $(UNPAIRED_STEPS)
	@echo "== 5. held-out report: rl: aot"
	$(BIN)/aot-cli report "$(DEMO_OUT)/aot/checkpoint-*" --config example_yamls/tiny/aot.yml --ref $(TINY_MODEL) \
		--data axolotl_aot/data/parity_paired_test.jsonl --out $(DEMO_OUT)/report-aot
	@echo "== 5. held-out report: rl: aot_unpaired"
	$(BIN)/aot-cli report "$(DEMO_OUT)/aot_unpaired/checkpoint-*" --config $(DEMO_OUT)/aot_unpaired.yml \
		--ref $(TINY_MODEL) --data $(DEMO_OUT)/parity_unpaired_test.jsonl --out $(DEMO_OUT)/report-aot-unpaired

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
