"""Axolotl dataset types of axolotl-aot: ``type: axolotl_aot_chat.unpaired``.

A top-level module because axolotl resolves ``type: module.function`` only for top-level
modules (``axolotl.prompt_strategies.base.load``); the rendering is ``axolotl_aot.integration.chat``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from axolotl.utils.chat_templates import get_chat_template_from_config

from axolotl_aot.integration.chat import render_unpaired


def unpaired(cfg: Any, dataset_idx: int = 0, **kwargs: Any) -> Callable[..., dict[str, Any]]:
    """KTO-family type: ``prompt``/``completion`` messages (or strings) and ``label``, rendered with the
    model's chat template (or the config's ``chat_template:``)."""
    datasets = cfg.get("datasets") or []
    ds_cfg = datasets[dataset_idx] if dataset_idx < len(datasets) else None

    def transform_fn(sample: dict[str, Any], tokenizer: Any = None) -> dict[str, Any]:
        template = get_chat_template_from_config(cfg, ds_cfg, tokenizer)
        prompt, completion = render_unpaired(
            tokenizer,
            sample["prompt"],
            sample["completion"],
            system=sample.get("system"),
            chat_template=template,
        )
        return {"prompt": prompt, "completion": completion, "label": sample["label"]}

    return transform_fn
