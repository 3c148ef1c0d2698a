"""One way to build a configured AOT trainer outside axolotl's builder.

Axolotl builds the trainers of a training run from the YAML (``AOTPlugin``). ``aot-cli report``,
the benchmarks and the tests build them here instead: the mode's training-arguments class
(axolotl's DPO or KTO config with the AOT settings, ``training_args``), TRL's loss type for the
mode, and the trainer class, so that no caller restates them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from axolotl_aot.integration import compat
from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.modes import Mode
from axolotl_aot.integration.training_args import TRAINER_SETTINGS, AOTTrainingArguments

AxolotlDPOConfig, AxolotlKTOConfig = compat.rl_training_args()


@dataclass
class AOTPairedConfig(AxolotlDPOConfig, AOTTrainingArguments):
    """Axolotl's DPO config with the AOT settings, for a trainer built outside axolotl."""


@dataclass
class AOTUnpairedConfig(AxolotlKTOConfig, AOTTrainingArguments):
    """Axolotl's KTO config with the AOT settings, for a trainer built outside axolotl."""


def training_args(mode: Mode, settings: AOTArgs | None = None, **args: Any) -> Any:
    """The training arguments of a ``mode`` trainer: ``args`` (any TRL/HF training argument), the
    mode's loss type, and ``settings`` (default: every AOT key at its default)."""
    settings = settings or AOTArgs()
    config = AOTPairedConfig if mode.paired else AOTUnpairedConfig
    if mode.loss_type:
        args["loss_type"] = mode.loss_type
    return config(**args, **{key: getattr(settings, key) for key in TRAINER_SETTINGS})


def trainer_class(mode: Mode) -> type:
    module, name = mode.trainer.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def build_trainer(
    mode: Mode,
    model: Any,
    ref_model: Any = None,
    *,
    args: dict[str, Any],
    settings: AOTArgs | None = None,
    **trainer_kwargs: Any,
) -> Any:
    """A ``mode`` AOT trainer of ``model`` against ``ref_model`` (None: TRL's choice, e.g. the
    adapter-disabled base), with training arguments ``args`` and AOT ``settings``; the rest
    (``train_dataset``, ``processing_class``, ...) goes to the trainer."""
    return trainer_class(mode)(model, ref_model, args=training_args(mode, settings, **args), **trainer_kwargs)
