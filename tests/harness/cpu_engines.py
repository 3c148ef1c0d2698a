"""Test harness, never shipped: the environment and config keys that run a config's training under
FSDP2 or DeepSpeed ZeRO on CPU ranks over gloo (with ``sitecustomize`` in this directory)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HARNESS = Path(__file__).resolve().parent
PROBE = "engine_probe.EngineProbe"  # the plugin that records the engine on every rank


def environment(**extra: str) -> dict[str, str]:
    """The launching process's environment with the harness on ``PYTHONPATH`` and switched on."""
    path = os.pathsep.join(p for p in (str(HARNESS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "AOT_TEST_CPU_ENGINES": "1", "DS_ACCELERATOR": "cpu", **extra}


def fsdp2(layer: str = "LlamaDecoderLayer", state_dict_type: str = "FULL_STATE_DICT") -> dict[str, Any]:
    """axolotl keys for FSDP2 with each decoder layer a shard group (the root holds embeddings and head).

    The final model is always saved whole (``final_state_dict_type``): with SHARDED_STATE_DICT axolotl
    merges a checkpoint's shards into the final model instead, which here did not hold the final
    weights (off by 1.6e-3 after 3 steps with checkpoints at every step).
    """
    return {
        "fsdp_version": 2,
        "fsdp_config": {
            "offload_params": False,
            "cpu_ram_efficient_loading": False,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "transformer_layer_cls_to_wrap": layer,
            "state_dict_type": state_dict_type,
            "final_state_dict_type": "FULL_STATE_DICT",
            "reshard_after_forward": True,
        },
    }


def deepspeed(stage: int, folder: Path) -> dict[str, Any]:
    """axolotl's ``deepspeed:`` key, pointing at a ZeRO ``stage`` JSON written into ``folder``."""
    zero: dict[str, Any] = {"stage": stage}
    if stage == 3:  # every parameter partitioned (the tiny model's are all below the default threshold)
        zero.update(stage3_gather_16bit_weights_on_model_save=True, stage3_param_persistence_threshold=0)
    settings = {
        "zero_optimization": zero,
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
        **dict.fromkeys(
            (
                "train_micro_batch_size_per_gpu",
                "gradient_accumulation_steps",
                "train_batch_size",
                "gradient_clipping",
            ),
            "auto",
        ),
    }
    path = folder / f"zero{stage}.json"
    path.write_text(json.dumps(settings))
    return {"deepspeed": str(path)}


ENGINES = {
    "fsdp2": lambda folder: fsdp2(),
    "zero2": lambda f: deepspeed(2, f),
    "zero3": lambda f: deepspeed(3, f),
}


def engine_records(out: Path) -> list[dict[str, Any]]:
    """What ``engine_probe`` recorded on each rank, by rank."""
    return [json.loads(p.read_text()) for p in sorted(out.glob("engine-rank*.json"))]
