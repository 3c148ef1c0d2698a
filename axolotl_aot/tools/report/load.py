"""What a run is scored with: its training config, its evaluation rows and each checkpoint's models.

The rows are formatted by axolotl's own dataset types from the training config, so that they are
the rows training sees; axolotl is reached only through ``compat``. For an adapter the reference
is the adapter-disabled base (one model in memory; quantized on a GPU as a QLoRA run trained it);
otherwise ``ref`` or the config's ``base_model``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from axolotl_aot.integration import compat, modes
from axolotl_aot.integration.labels import check_both_labels, with_bool_labels
from axolotl_aot.integration.modes import OTHER_METHODS
from axolotl_aot.integration.records import SUFFIX_TYPES, file_suffix
from axolotl_aot.tools.report.discover import check_data
from axolotl_aot.tools.saved_models import check_loaded, unsaved_weights


def method(cfg: Any) -> str:
    """The ``rl`` a run trained with, as the report names it (``aot``, ``aot_unpaired``, ``dpo``, ...):
    the plugin rewrites ``rl: aot*`` to axolotl's own, so an AOT run's is its mode's."""
    return mode.rl if (mode := modes.of_config(cfg)) else str(getattr(cfg.rl, "value", cfg.rl))


def load_report_config(config: str | Path, data: str | Path | None, ref: str | None = None) -> Any:
    """The training config, validated and normalised as axolotl does, with ``data`` as the test set
    and ``ref`` (when given) as the base model."""
    from axolotl_aot.tools.config import validate_raw

    raw = _read(config)
    if ref is not None:
        raw["base_model"] = ref
    if data is not None:
        raw["test_datasets"] = [_data_entry(Path(data), raw)]
        raw.pop("val_set_size", None)
    # An evaluation set is small: no worker processes, and no copy cached in the training's
    # dataset_prepared_path.
    raw.update(dataset_num_proc=1, skip_prepare_dataset=True)
    cfg = validate_raw(raw, config)
    if modes.data_mode(cfg) is None:
        raise ValueError(
            f"{config}: rl: {method(cfg)} is not a preference method the report scores; "
            f"use a config with rl: aot, aot_unpaired, {', '.join(OTHER_METHODS)}"
        )
    compat.normalize_config(cfg)
    if data is not None:
        cfg.test_datasets = [compat.dict_default(entry) for entry in cfg.test_datasets]
    return cfg


def config_base_model(config: str | Path) -> str | None:
    """The ``base_model`` of the training config at ``config``: the model the run trained from."""
    base = _read(config).get("base_model")
    return str(base) if base else None


def _read(config: str | Path) -> dict[str, Any]:
    import yaml

    with open(config, encoding="utf-8") as file:
        return yaml.safe_load(file)


def _data_entry(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """A test-dataset entry for ``path`` formatted with the type of the config's first dataset."""
    check_data(path)
    entry: dict[str, Any] = {"path": str(path.resolve()), "split": "train"}
    if path.is_file():
        entry["ds_type"] = SUFFIX_TYPES[file_suffix(path)]
    datasets = raw.get("datasets") or [{}]
    if datasets[0].get("type") is not None:
        entry["type"] = datasets[0]["type"]
    return entry


def load_eval_dataset(cfg: Any, max_samples: int | None) -> Any:
    """The evaluation rows after axolotl's dataset type, as training formats them."""
    try:
        if cfg.test_datasets:
            dataset = compat.load_split(cfg, split="test")
        elif cfg.val_set_size:
            dataset = compat.prepare_preference_datasets(cfg, compat.load_tokenizer(cfg))[1]
        else:
            raise ValueError(
                "no evaluation set: pass --data FILE, or set test_datasets or val_set_size in the config"
            )
    except KeyError as err:
        raise ValueError(
            f"the evaluation data has no column {err} that its dataset type reads; "
            "check --data against the config's dataset type"
        ) from None
    mode = modes.data_mode(cfg)
    missing = [column for column in mode.columns if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"the evaluation data lacks {', '.join(missing)} after formatting; rl mode {mode.name}"
        )
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    if len(dataset) == 0:
        raise ValueError("the evaluation set is empty")
    if not mode.paired:
        dataset = with_bool_labels(dataset, "the evaluation set")
        check_both_labels(dataset["label"], "the evaluation set")
    return dataset


def quantization(cfg: Any) -> Any | None:
    """The ``BitsAndBytesConfig`` axolotl loads the base of an ``adapter: qlora`` run with
    ``load_in_4bit`` (or of an ``adapter: lora`` run with ``load_in_8bit``) in, ``bnb_config_kwargs``
    included, or None. Axolotl's exceptions for a few architectures (Jamba, Qwen2-MoE, Nemotron-H,
    Falcon-H1) are not repeated."""
    from transformers import BitsAndBytesConfig

    if cfg.adapter == "qlora" and cfg.load_in_4bit:
        settings = {
            "load_in_4bit": True,
            "llm_int8_threshold": 6.0,
            "llm_int8_has_fp16_weight": False,
            "bnb_4bit_compute_dtype": cfg.torch_dtype or torch.bfloat16,
            "bnb_4bit_use_double_quant": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_quant_storage": torch.bfloat16,
            **(cfg.bnb_config_kwargs or {}),
        }
        return BitsAndBytesConfig(**settings)
    if cfg.adapter == "lora" and cfg.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def load_models(checkpoint: Path, cfg: Any, ref: str | None, device: str) -> tuple[Any, Any, Any]:
    """(model, reference or None for adapters, tokenizer) of a checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    problem = unsaved_weights(checkpoint)
    if problem:
        raise ValueError(problem)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    is_adapter = (checkpoint / "adapter_config.json").exists()
    if is_adapter:
        from peft import PeftModel

        base_name = json.loads((checkpoint / "adapter_config.json").read_text()).get(
            "base_model_name_or_path"
        )
        # On a GPU the base is quantized as the run trained it; bitsandbytes places it (a quantized
        # model cannot be moved later). On a CPU it loads unquantized: the adapter applies all the same.
        quantized = quantization(cfg) if device == "cuda" else None
        placed = {}
        if quantized is not None:
            placed = {"quantization_config": quantized, "device_map": {"": torch.cuda.current_device()}}
        base = AutoModelForCausalLM.from_pretrained(ref or cfg.base_model or base_name, dtype=dtype, **placed)
        model, reference = PeftModel.from_pretrained(base, checkpoint), None
        check_loaded(checkpoint, model)
        reference_name = ref or cfg.base_model or base_name
    else:
        model, info = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype, output_loading_info=True)
        check_loaded(checkpoint, model, info)
        reference_name = ref or cfg.base_model
        reference = AutoModelForCausalLM.from_pretrained(reference_name, dtype=dtype)
    for loaded in (model, reference):
        if loaded is not None and getattr(loaded, "hf_quantizer", None) is None:  # bitsandbytes placed it
            loaded.to(device)
    tokenizer_source = checkpoint if (checkpoint / "tokenizer_config.json").exists() else reference_name
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    reference_tokenizer = AutoTokenizer.from_pretrained(reference_name)
    if tokenizer.get_vocab() != reference_tokenizer.get_vocab():
        raise ValueError(
            f"the tokenizer of {checkpoint} does not match the reference {reference_name}; "
            "pass the model the checkpoint was trained from with --ref"
        )
    return model, reference, tokenizer
