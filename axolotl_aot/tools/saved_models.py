"""Whether a checkpoint folder holds weights that load as saved, and if not, what fixes it.

Sharded engines can leave a folder with a ``config.json`` but no loadable weights:

- DeepSpeed ZeRO-3 writes only its partitioned ``global_step*/`` states unless the DeepSpeed JSON
  sets ``zero_optimization.stage3_gather_16bit_weights_on_model_save: true``; DeepSpeed's
  ``zero_to_fp32.py`` (copied into the folder) consolidates them.
- FSDP with ``state_dict_type: SHARDED_STATE_DICT`` writes per-rank ``pytorch_model_fsdp_*``
  shards in ``checkpoint-N``; ``axolotl merge-sharded-fsdp-weights`` consolidates them.

Loaders of both libraries then either fail with a message about a missing file or, for adapters
and models whose tensor names do not match, only warn and keep initial weights: ``check_loaded``
makes that an error, so that a report never scores a base model in a trained one's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The files a saved model's or adapter's weights are in, whole or indexed shards (transformers, PEFT);
# also what ``integration.checkpoints`` requires of a checkpoint to resume from.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)


def unsaved_weights(folder: Path) -> str | None:
    """Why ``folder`` has no weights that load as saved (with the fix), or None."""
    if any((folder / name).exists() for name in WEIGHT_FILES):
        return None
    if any(folder.glob("global_step*")):
        return (
            f"{folder} holds DeepSpeed ZeRO partitioned states (global_step*/) and no model weights: "
            "ZeRO-3 saves whole weights only with "
            "zero_optimization.stage3_gather_16bit_weights_on_model_save: true in the DeepSpeed JSON. "
            f"Consolidate this one with `python {folder / 'zero_to_fp32.py'} {folder} {folder}/consolidated "
            "--safe_serialization`, copy config.json and the tokenizer files into it, and report that folder"
        )
    if any(folder.glob("pytorch_model_fsdp_*")):
        return (
            f"{folder} holds FSDP sharded states (pytorch_model_fsdp_*/, from state_dict_type: "
            "SHARDED_STATE_DICT) and no model weights. Consolidate them with `python -m "
            f"axolotl.cli.merge_sharded_fsdp_weights CONFIG --output_dir {folder}`, copy config.json and "
            f"the tokenizer files into {folder}/merged, and report that folder"
        )
    return f"{folder} has a config but no model or adapter weights ({', '.join(WEIGHT_FILES[::2])})"


def check_loaded(folder: Path, model: Any, loading_info: dict[str, Any] | None = None) -> None:
    """Raise if ``model`` (loaded from ``folder``) did not get every tensor it should have from the file:
    an adapter's keys (``adapter_keys``), or the missing keys transformers reports for a full model."""
    if loading_info is None:
        from axolotl_aot.integration.adapter_keys import adapter_key_problems

        problem = adapter_key_problems(model, folder)
        if problem:
            raise ValueError(problem)
        return
    missing = sorted(loading_info.get("missing_keys") or [])
    if missing:
        raise ValueError(
            f"{folder}: {len(missing)} of the model's tensors are not in the saved weights "
            f"(e.g. {missing[:3]}): they would be scored at their random initialisation. Save the whole "
            "model, or pass the folder it was saved to"
        )
