"""Every evaluation row's log-probs under a checkpoint and its reference, scored by the AOT trainer.

The trainer of the run's mode tokenizes, collates and scores the rows (``score_batch``), so the
rewards r = log pi_ckpt(y|x) - log pi_ref(y|x) are the ones training computes. For methods
without a reference model (SimPO) the reference is the base model all the same: the reward is
how far training moved the log-probs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from axolotl_aot.integration import compat, modes
from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.beta import TRL_BETA, beta
from axolotl_aot.integration.evaluation import Scores
from axolotl_aot.integration.logps import TokenStats
from axolotl_aot.integration.training_args import config_settings


def score(
    model: Any,
    reference: Any,
    tokenizer: Any,
    dataset: Any,
    cfg: Any,
    *,
    batch_size: int,
    device: str,
    on_batch: Callable[[int, int], None] | None = None,
) -> Scores:
    """Rewards of every evaluation row, through the AOT trainer's own tokenization and log-probs."""
    from axolotl_aot.integration.rows import PairColumns, SampleColumns

    trainer = scoring_trainer(model, reference, tokenizer, dataset, cfg, batch_size, device)
    tokenized = trainer.train_dataset
    paired, n = modes.data_mode(cfg).paired, len(tokenized)
    # Float64 columns in dataset order (paired: one row a pair), token statistics one row a
    # sequence (paired: the chosen completions, then the rejected ones).
    columns = [
        torch.zeros(n, dtype=torch.float64) for _ in (PairColumns if paired else SampleColumns)._fields
    ]
    stats = TokenStats(
        *(torch.zeros(2 * n if paired else n, dtype=torch.float64) for _ in TokenStats._fields)
    )
    batches = list(_length_buckets(tokenized, batch_size, paired))
    for done, indices in enumerate(batches, start=1):
        rows = trainer.score_batch([tokenized[i] for i in indices])
        positions = torch.as_tensor(indices)
        for column, values in zip(columns, rows.columns, strict=True):
            column[positions] = values.double().cpu()
        if paired:  # the policy pass holds the chosen rows, then the rejected rows
            positions = torch.cat([positions, positions + n])
        for column, values in zip(stats, rows.policy.stats, strict=True):
            column[positions] = values.double().cpu()
        if on_batch is not None:
            on_batch(done, len(batches))
    return Scores.from_columns(paired, columns, stats)


def scoring_trainer(
    model: Any, reference: Any, tokenizer: Any, dataset: Any, cfg: Any, batch_size: int, device: str
) -> Any:
    """The AOT trainer of the run's mode over ``dataset`` (which it tokenizes), built only to score."""
    from axolotl_aot.integration.factory import build_trainer

    # The trainer saves nothing, but the Trainer creates its output_dir: a temporary one, removed
    # once the trainer is built, so that no folder is left behind.
    with tempfile.TemporaryDirectory(prefix="aot-report-") as scratch:
        trainer = build_trainer(
            modes.data_mode(cfg),
            model,
            reference,
            args={
                "output_dir": scratch,
                "per_device_train_batch_size": batch_size,
                "per_device_eval_batch_size": batch_size,
                "report_to": [],
                "use_cpu": device == "cpu",
                "bf16": device == "cuda",
                "beta": float(beta(cfg, default=TRL_BETA)[1]),
                "max_length": cfg.sequence_len,
                "remove_unused_columns": False,
            },
            settings=AOTArgs.model_validate(config_settings(cfg)),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    compat.drop_trl_ref_adapter(trainer.model)  # the reference of an adapter is its base
    return trainer


def _length_buckets(tokenized: Any, batch_size: int, paired: bool) -> Iterator[list[int]]:
    """Batches of rows of similar length, so that little compute goes to padding."""
    columns = ("prompt_ids", "chosen_ids", "rejected_ids") if paired else ("prompt_ids", "completion_ids")
    present = [c for c in columns if c in tokenized.column_names]
    lengths = [sum(len(row[c]) for c in present) for row in tokenized.select_columns(present)]
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size].tolist()
