"""The AOT settings as training arguments, so that each trainer carries its own.

The plugin names ``AOTTrainingArguments`` in ``get_training_args_mixin``: axolotl merges it into
the training-arguments classes of its DPO and KTO configs (axolotl 0.19 and 0.21), and the
plugin's ``get_training_args`` fills in the config's ``aot_*`` values. A trainer reads them from
its own ``args`` (``settings_of``) when it is built, before TRL's constructor computes anything
(``precompute_ref_log_probs``), and they are saved with the run's ``training_args.bin``.

This module imports nothing of axolotl: axolotl imports it while it builds its own
training-arguments classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from axolotl_aot.integration.args import AOTArgs

# The YAML keys the trainers read (the others are config-time choices of the plugin).
TRAINER_SETTINGS = (
    "aot_cost",
    "aot_sort_scope",
    "aot_label_smoothing",
    "aot_logits_chunk_size",
    "aot_padding_free",
    "aot_label_ratio",
)


def _default(key: str) -> Any:
    return field(default=AOTArgs.model_fields[key].default, metadata={"help": f"AOT: see the YAML key {key}"})


@dataclass
class AOTTrainingArguments:
    """The trainers' AOT settings; defaults and meaning are those of ``AOTArgs``."""

    aot_cost: str = _default("aot_cost")
    aot_sort_scope: str = _default("aot_sort_scope")
    aot_label_smoothing: float = _default("aot_label_smoothing")
    aot_logits_chunk_size: int = _default("aot_logits_chunk_size")
    aot_padding_free: bool = _default("aot_padding_free")
    aot_label_ratio: str = _default("aot_label_ratio")


def config_settings(cfg: Any) -> dict[str, Any]:
    """The trainer settings an axolotl config (or YAML dict) sets; the others keep their defaults."""
    return {key: cfg.get(key) for key in TRAINER_SETTINGS if cfg.get(key) is not None}


def settings_merged() -> bool:
    """Whether axolotl's DPO and KTO training arguments carry ``AOTTrainingArguments``.

    Axolotl merges plugins' mixins once, when ``axolotl.core.training_args`` is first imported:
    true for every ``axolotl`` command (the plugin registers first), false in a process that
    imported axolotl's trainers before the plugin registered.
    """
    from axolotl_aot.integration.compat import rl_training_args

    return all(issubclass(config, AOTTrainingArguments) for config in rl_training_args())


def settings_of(args: Any) -> AOTArgs:
    """The validated AOT settings a trainer's training arguments carry."""
    missing = [key for key in TRAINER_SETTINGS if not hasattr(args, key)]
    if missing:
        raise ValueError(
            f"the training arguments ({type(args).__name__}) carry no AOT settings ({', '.join(missing)}): "
            "train through an axolotl command with the AOT plugin (a process that imported axolotl's "
            "trainers before the plugin registered has training arguments without them), or build the "
            "trainer with axolotl_aot.integration.factory.build_trainer"
        )
    return AOTArgs.model_validate({key: getattr(args, key) for key in TRAINER_SETTINGS})
