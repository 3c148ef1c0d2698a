"""Validate an axolotl YAML the way ``axolotl.cli.train`` does, without loading a model.

``axolotl.cli.config.load_cfg`` reads the YAML, registers the plugins (which is where
``rl: aot`` is rewritten), validates against axolotl's schema merged with the plugins'
models, and then normalises the config, which loads the model's config from its path
or the hub. This stops before that last step, so a GPU config checks on any machine.
Every axolotl name is reached through ``integration.compat``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from axolotl_aot.integration import compat

# What a recent NVIDIA GPU reports to axolotl, for validating GPU configs on a CPU machine.
GPU_CAPABILITIES: dict[str, Any] = {
    "bf16": True,
    "fp8": False,
    "tf32": True,
    "n_gpu": 1,
    "compute_capability": "sm_90",
}


def load_and_validate(path: str | Path, *, as_gpu: bool = False, n_gpu: int = 1) -> Any:
    """The validated config (axolotl's ``DictDefault``) of the YAML at ``path``; pydantic/``ValueError``
    errors propagate.

    ``as_gpu`` validates against the capabilities of ``n_gpu`` GPUs instead of this machine's.
    """
    with open(path, encoding="utf-8") as file:
        return validate_raw(yaml.safe_load(file), path, as_gpu=as_gpu, n_gpu=n_gpu)


def validate_raw(raw: dict[str, Any], path: str | Path, *, as_gpu: bool = False, n_gpu: int = 1) -> Any:
    """Register the plugins on the parsed YAML ``raw`` (read from ``path``) and validate it.

    Against this machine's capabilities, as ``axolotl.cli.train`` would here, unless ``as_gpu``.
    """
    cfg = compat.dict_default(raw)
    cfg.axolotl_config_path = str(path)
    compat.prepare_plugins(cfg)
    capabilities = {**GPU_CAPABILITIES, "n_gpu": n_gpu} if as_gpu else None
    return compat.validate_config(cfg, capabilities=capabilities)


def known_keys() -> set[str]:
    """Every top-level key axolotl's schema accepts, with the registered plugins' keys and aliases.

    Axolotl drops any other key silently, so a misspelt one trains with the default.
    Call after ``validate_raw`` (which registers the config's plugins).
    """
    keys = set()
    for name, info in compat.schema_fields().items():
        keys.add(name)
        keys.update(alias for alias in (info.alias, info.validation_alias) if isinstance(alias, str))
    return keys


def requested_attention(cfg: dict[str, Any]) -> str:
    """The attention implementation an axolotl config asks for (transformers' name; sdpa by default)."""
    if cfg.get("attn_implementation"):
        return cfg["attn_implementation"]
    flags = {
        "flash_attention": "flash_attention_2",
        "flex_attention": "flex_attention",
        "eager_attention": "eager",
        "xformers_attention": "xformers",
        "sdp_attention": "sdpa",
    }
    return next((name for key, name in flags.items() if cfg.get(key)), "sdpa")
