"""What the trainer tests share: the tiny data, TRL-compatible trainer construction, a bare loss path."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import torch
from axolotl.prompt_strategies.dpo.chatml import prompt_pairs as dpo_prompt_pairs
from axolotl.prompt_strategies.kto.chatml import prompt_pairs as kto_prompt_pairs
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig

from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.factory import build_trainer
from axolotl_aot.integration.modes import PAIRED, UNPAIRED
from axolotl_aot.integration.trainers import AOTPairedTrainer, AOTUnpairedTrainer
from axolotl_aot.tools.synthetic import DATA_DIR

BETA = 0.5
PAIRS = 8


def rows(name: str, count: int) -> list[dict]:
    lines = (DATA_DIR / f"parity_{name}.jsonl").read_text().splitlines()[:count]
    return [json.loads(line) for line in lines]


def paired_dataset() -> Dataset:
    fn = dpo_prompt_pairs(cfg=None)  # axolotl's own chatml formatting, as training uses it
    return Dataset.from_list([fn(row) for row in rows("paired_train", PAIRS)])


def unpaired_dataset() -> Dataset:
    fn = kto_prompt_pairs(cfg=None)
    return Dataset.from_list([fn(row) for row in rows("unpaired_train", 12)])


def config_kwargs(tmp_path: Path, batch: int) -> dict:
    return {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": batch,
        "report_to": [],
        "use_cpu": True,
        "bf16": False,  # axolotl's configs default to bf16, which CPU autocast would apply to the reference
        "beta": BETA,
        "max_length": 64,
        "seed": 0,
    }


def load(path: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def paired_trainer(cls, models, tmp_path, settings: AOTArgs | None = None, **config):
    """``cls`` (ours, or TRL's own trainer to compare with) on 8 pairs; ours with AOT ``settings``."""
    policy, reference = models
    data = {"train_dataset": paired_dataset(), "processing_class": AutoTokenizer.from_pretrained(policy)}
    args = {**config_kwargs(tmp_path, PAIRS), **config}
    if cls is AOTPairedTrainer:
        return build_trainer(PAIRED, load(policy), load(reference), args=args, settings=settings, **data)
    return cls(load(policy), load(reference), args=DPOConfig(**args), **data)


def loss_path(cls, model: torch.nn.Module, scope: str):
    """The trainer's ``_compute_loss`` without the Trainer machinery around it."""
    trainer = cls.__new__(cls)
    trainer.model, trainer.ref_model, trainer.beta = model, None, BETA
    trainer.precompute_ref_logps = True
    trainer.aux_loss_enabled, trainer._total_train_tokens = False, 0  # set by TRL's constructor
    trainer.accelerator, trainer.is_fsdp_enabled = SimpleNamespace(unwrap_model=lambda m, **_: m), False
    trainer.args = SimpleNamespace(torch_compile=False, gradient_checkpointing_kwargs=None)
    trainer._init_aot(AOTArgs(aot_sort_scope=scope))
    trainer._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    return trainer


def unpaired_trainer(models, tmp_path, settings: AOTArgs | None = None, **config) -> AOTUnpairedTrainer:
    """Ours on 12 unpaired rows, with AOT ``settings``."""
    policy, reference = models
    return build_trainer(
        UNPAIRED,
        load(policy),
        load(reference),
        args={**config_kwargs(tmp_path, 12), **config},
        settings=settings,
        train_dataset=unpaired_dataset(),
        processing_class=AutoTokenizer.from_pretrained(policy),
    )


def step_trainer(models, tmp_path, scope: str, batch: int, accumulation: int, **config) -> AOTPairedTrainer:
    settings = AOTArgs(aot_sort_scope=scope, aot_cost="squared_hinge")
    trainer = paired_trainer(
        AOTPairedTrainer, models, tmp_path, settings, gradient_accumulation_steps=accumulation, **config
    )
    trainer.args.per_device_train_batch_size = batch
    trainer.model.train()
    return trainer


def run_step(trainer: AOTPairedTrainer, micro_batches: list[dict]) -> tuple[float, torch.Tensor]:
    """One optimizer step's forward/backward passes as the Trainer's loop runs them."""
    trainer.model.zero_grad()
    batch_samples, _ = trainer.get_batch_samples(iter(micro_batches), len(micro_batches), torch.device("cpu"))
    trainer.current_gradient_accumulation_steps = len(batch_samples)
    logged = sum(trainer.training_step(trainer.model, batch).item() for batch in batch_samples)
    return logged, torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
