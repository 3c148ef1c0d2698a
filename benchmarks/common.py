"""What the benchmarks share: models built locally, the bundled data, trainers, timing in child processes.

Every variant runs in its own spawned child so that its peak RSS is its own; the parent
runs the variants of one comparison side by side in one invocation and prints ratios.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.update(
    AXOLOTL_DO_NOT_TRACK="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled", TRL_EXPERIMENTAL_SILENCE="1"
)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "axolotl_aot/data"


# What every variant trains with (each trainer's own config class), besides its output and lengths.
TRAINING_ARGS = {
    "report_to": [],
    "use_cpu": True,
    "bf16": False,
    "beta": 0.1,
    "learning_rate": 3e-3,
    "lr_scheduler_type": "constant",
    "logging_steps": 1,
    "save_strategy": "no",
    "seed": 0,
    "remove_unused_columns": False,
}


def build_models(folder: Path, hidden_size: int, layers: int) -> tuple[Path, Path]:
    """A policy and a differently seeded reference of the same shape (so rewards are not all 0)."""
    from axolotl_aot.tools.tiny_model import build_tiny_model

    policy, reference = (
        folder / f"policy-{hidden_size}x{layers}",
        folder / f"reference-{hidden_size}x{layers}",
    )
    for path, seed in ((policy, 0), (reference, 1)):
        if not (path / "config.json").exists():
            build_tiny_model(path, seed=seed, hidden_size=hidden_size, layers=layers)
    return policy, reference


def dataset(kind: str, split: str = "train") -> Any:
    """The bundled rows formatted by axolotl's chatml.prompt_pairs type, as training formats them."""
    from axolotl.prompt_strategies.dpo.chatml import prompt_pairs as dpo_pairs
    from axolotl.prompt_strategies.kto.chatml import prompt_pairs as kto_pairs
    from datasets import Dataset

    paired = kind == "paired"
    transform = (dpo_pairs if paired else kto_pairs)(cfg=None)
    path = DATA / f"parity_{'paired' if paired else 'unpaired'}_{split}.jsonl"
    return Dataset.from_list([transform(json.loads(line)) for line in path.read_text().splitlines()])


def trainer(variant: str, models: tuple[Path, Path], output: Path, **args: Any) -> Any:
    """A trainer of ``variant``: aot, trl-aot, aot-unpaired or kto, on the CPU in float32.

    ``scope`` and any ``aot_*`` key go to the AOT settings (``AOTArgs``), ``rows`` (a ``Dataset``)
    replaces the bundled rows, the rest are training arguments."""
    import torch
    from axolotl.core.trainers.dpo.args import AxolotlDPOConfig
    from axolotl.core.training_args import AxolotlKTOConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_aot.integration.args import AOTArgs
    from axolotl_aot.integration.factory import build_trainer
    from axolotl_aot.integration.modes import PAIRED, UNPAIRED

    scope = args.pop("scope", "world")
    aot = {key: args.pop(key) for key in [k for k in args if k.startswith("aot_")]}
    rows = args.pop("rows", None)
    common = {"output_dir": str(output), "max_length": 64, **TRAINING_ARGS, **args}
    policy = AutoModelForCausalLM.from_pretrained(models[0], dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(models[1], dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    if variant in ("aot", "aot-unpaired"):  # configured as the plugin would: the factory
        mode = PAIRED if variant == "aot" else UNPAIRED
        return build_trainer(
            mode,
            policy,
            reference,
            args=common,
            settings=AOTArgs(aot_sort_scope=scope, **aot),
            train_dataset=dataset(mode.name) if rows is None else rows,
            processing_class=tokenizer,
        )
    if variant == "trl-aot":
        config = AxolotlDPOConfig(**common, loss_type=["aot"])
        built = _axolotl_dpo_trainer()(
            policy,
            reference,
            args=config,
            train_dataset=dataset("paired") if rows is None else rows,
            processing_class=tokenizer,
        )
    else:
        config = AxolotlKTOConfig(**common, loss_type="kto", train_sampling_strategy="sequential")
        built = _axolotl_kto_trainer()(
            policy,
            reference,
            args=config,
            train_dataset=dataset("unpaired") if rows is None else rows,
            processing_class=tokenizer,
        )
    return built


def _axolotl_dpo_trainer() -> type:
    from axolotl.core.trainers.dpo.trainer import AxolotlDPOTrainer

    return AxolotlDPOTrainer


def _axolotl_kto_trainer() -> type:
    from axolotl.core.trainers.trl import AxolotlKTOTrainer

    return AxolotlKTOTrainer


def timed_training(built: Any, warmup: int) -> dict[str, Any]:
    """Train, timing optimizer steps from step end to step end (so the step scope's scoring pass,
    which runs before a step's first micro-batch, is counted); the median excludes ``warmup``."""
    from transformers import TrainerCallback

    ends: list[float] = []

    class StepTimer(TrainerCallback):
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            ends.append(time.perf_counter())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            ends.append(time.perf_counter())

    built.add_callback(StepTimer())
    built.train()
    times = [b - a for a, b in itertools.pairwise(ends)]
    return {"step_seconds": statistics.median(times[warmup:]), "steps": len(times)}


def run_in_child(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``function(*args)`` in a spawned process; adds that process's peak RSS in MiB."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_with_peak_rss, (function, *args))


def _with_peak_rss(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    result = function(*args)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result
