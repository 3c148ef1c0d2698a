"""The tensor names a saved LoRA adapter must have, and the repair of axolotl's FSDP2 final save.

``PeftModel.from_pretrained`` only warns about adapter keys it does not recognise and leaves the
adapter at its initialisation (LoRA's B = 0: the plain base model). So a file whose keys do not
match is scored or served as the base model without an error. ``adapter_key_problems`` names the
mismatch, for ``aot-cli report``; ``repair_fsdp2_adapter`` fixes the one such file axolotl writes
itself: under FSDP2, its final ``adapter_model.safetensors`` (``save_fsdp2_lora_adapter``,
axolotl 0.19 and 0.21) drops PEFT's ``base_model.model.`` prefix, while its ``checkpoint-N``
adapters are correct.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file

LOG = logging.getLogger(__name__)
PEFT_PREFIX = "base_model.model."
ADAPTER_FILE = "adapter_model.safetensors"


def expected_keys(model: Any) -> set[str]:
    """The keys PEFT writes for the active adapter of ``model`` (and reads back): a ``PeftModel``, or
    the model inside one, whose tensor names lack the prefix (what axolotl's RL path hands its hooks:
    TRL wrapped the base model it loaded)."""
    from peft import PeftModel
    from peft.utils.save_and_load import get_peft_model_state_dict

    keys = set(get_peft_model_state_dict(model))
    return keys if isinstance(model, PeftModel) else {PEFT_PREFIX + key for key in keys}


def saved_keys(folder: Path) -> set[str]:
    with safe_open(str(folder / ADAPTER_FILE), "pt") as saved:
        return set(saved.keys())


def adapter_key_problems(model: Any, folder: Path) -> str | None:
    """Why ``folder``'s adapter would not load into ``model`` key for key, or None."""
    if not (folder / ADAPTER_FILE).exists():
        return None  # a .bin adapter: PEFT's own loader checks it
    expected, saved = expected_keys(model), saved_keys(folder)
    if expected == saved:
        return None
    missing, unexpected = sorted(expected - saved), sorted(saved - expected)
    message = (
        f"{folder / ADAPTER_FILE}: {len(missing)} of the adapter's {len(expected)} tensors are missing "
        f"(e.g. {missing[:2]}) and {len(unexpected)} are not the model's (e.g. {unexpected[:2]}); "
        "PEFT would load the base model's untrained adapter in their place"
    )
    if unexpected and {PEFT_PREFIX + key for key in unexpected} <= expected:
        message += (
            f": the keys lack PEFT's {PEFT_PREFIX!r} prefix, as axolotl's FSDP2 final save writes them "
            "(axolotl-aot repairs that file at the end of training): score the run's checkpoint-N "
            "folders, whose adapters are complete"
        )
    return message


def repair_fsdp2_adapter(output_dir: Path, model: Any) -> bool:
    """Add the missing ``base_model.model.`` prefix to ``output_dir``'s adapter if that makes its keys
    PEFT's; True if the file was rewritten. Any other mismatch is an error: never a silent base model."""
    path = output_dir / ADAPTER_FILE
    if not path.exists():
        return False
    expected, tensors = expected_keys(model), load_file(path)
    if set(tensors) == expected:
        return False
    prefixed = {
        key if key.startswith(PEFT_PREFIX) else PEFT_PREFIX + key: value for key, value in tensors.items()
    }
    if set(prefixed) != expected:
        raise RuntimeError(adapter_key_problems(model, output_dir))
    save_file(prefixed, str(path), metadata={"format": "pt"})
    LOG.info(
        "axolotl-aot: %s re-saved with PEFT's %r key prefix (axolotl's FSDP2 save drops it)",
        path,
        PEFT_PREFIX,
    )
    return True
