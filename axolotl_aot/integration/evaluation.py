"""Whole-set evaluation: the metrics training logs as ``eval_*`` and ``aot-cli report`` reports.

AOT's target is distributional, so its evaluation is too: the statistics are computed once
over every evaluation row (never averaged over batches, which biases quantile statistics
and leaves one-sided unpaired batches out). The trainers and the report both build
``Scores`` from per-row log-probs and call ``eval_metrics``: one code path, so a
checkpoint's logged eval metrics equal the report's on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from axolotl_aot.integration.logps import TokenStats
from axolotl_aot.ot.dominance import dominance_stats
from axolotl_aot.ot.losses import Cost, aot_paired_loss, aot_unpaired_loss

# Metrics (as logged, without the eval_ prefix) for which lower is better; HF infers
# greater_is_better=True for any metric whose name does not end in "loss".
LOWER_IS_BETTER = frozenset({"loss", "aot/violation_fraction", "aot/violation_area"})


@dataclass
class Scores:
    """Per-sample rewards and log-probs of an evaluation set; pairs aligned by index when paired."""

    paired: bool
    reward_pos: np.ndarray
    reward_neg: np.ndarray
    logp_pos: np.ndarray
    logp_neg: np.ndarray
    ref_logp_pos: np.ndarray
    ref_logp_neg: np.ndarray
    stats_pos: TokenStats | None = None  # the policy's token statistics of each positive row
    stats_neg: TokenStats | None = None

    @classmethod
    def from_columns(
        cls, paired: bool, columns: Sequence[np.ndarray | torch.Tensor], stats: TokenStats | None = None
    ) -> Scores:
        """From per-row columns: paired (chosen, rejected, ref chosen, ref rejected log-probs) of each
        pair; unpaired (log-prob, ref log-prob, label) of each row. ``stats`` has one row per
        sequence: paired, the chosen completions, then the rejected ones."""
        arrays = [_numpy(c) for c in columns]
        if paired:
            chosen, rejected, ref_chosen, ref_rejected = arrays
            positive = np.arange(2 * len(chosen)) < len(chosen)
            scores = cls(
                True, chosen - ref_chosen, rejected - ref_rejected, chosen, rejected, ref_chosen, ref_rejected
            )
        else:
            logps, ref_logps, labels = arrays
            positive = labels.astype(bool)
            pos, neg = positive, ~positive
            rewards = logps - ref_logps
            scores = cls(
                False, rewards[pos], rewards[neg], logps[pos], logps[neg], ref_logps[pos], ref_logps[neg]
            )
        if stats is not None:
            mask = torch.from_numpy(positive)
            scores.stats_pos, scores.stats_neg = stats.select(mask), stats.select(~mask)
        return scores

    @property
    def size(self) -> int:
        """Evaluation pairs (paired) or samples (unpaired): the size of the whole-set sort."""
        return len(self.reward_pos) if self.paired else len(self.reward_pos) + len(self.reward_neg)


def aot_loss(scores: Scores, *, beta: float, cost: Cost = "logistic", label_smoothing: float = 0.0) -> float:
    """The AOT loss between the whole set's measures (exact for n != m), in float64."""
    settings = {"beta": beta, "cost": cost, "label_smoothing": label_smoothing}
    if scores.paired:
        logps = (scores.logp_pos, scores.logp_neg, scores.ref_logp_pos, scores.ref_logp_neg)
        return aot_paired_loss(*map(torch.from_numpy, logps), **settings).item()
    pos, neg = torch.from_numpy(scores.reward_pos), torch.from_numpy(scores.reward_neg)
    return aot_unpaired_loss(pos, neg, **settings).item()


def reward_metrics(
    pos: torch.Tensor | np.ndarray, neg: torch.Tensor | np.ndarray, *, paired: bool
) -> dict[str, float]:
    """Dominance of ``pos`` over ``neg`` (both non-empty), named as the trainers log it.

    Rewards come beta-scaled, as TRL's ``rewards/*``; the dominance statistics do not depend on beta.
    """
    pos, neg = _numpy(pos), _numpy(neg)
    stats = dominance_stats(pos, neg)
    metrics = {
        "aot/sort_size": float(stats.n_pos if paired else stats.n_pos + stats.n_neg),
        "aot/violation_fraction": stats.violation_fraction,
        "aot/violation_area": stats.violation_area,
        "aot/win_rate": stats.win_rate,
        "aot/min_quantile_margin": stats.min_quantile_margin,
        "rewards/chosen": stats.mean_pos,
        "rewards/rejected": stats.mean_neg,
        "rewards/margins": stats.mean_pos - stats.mean_neg,
    }
    if paired:
        metrics["rewards/accuracies"] = float((pos > neg).mean())
    return metrics


def policy_metrics(
    logp_pos: torch.Tensor | np.ndarray,
    logp_neg: torch.Tensor | np.ndarray,
    stats_pos: TokenStats,
    stats_neg: TokenStats,
) -> dict[str, float]:
    """TRL's DPO/KTO metrics of the policy's completions, under TRL's names (chosen = positive).

    ``logps/*``: mean summed completion log-prob; ``logits/*``: mean over completion tokens of
    the mean logit over the vocabulary; ``entropy``: mean over every completion token;
    ``mean_token_accuracy``: argmax hits over the chosen completions' tokens. A side with no
    rows is left out (as TRL's KTO does); no tokens count as 0 (as TRL's DPO does).
    """
    pos, neg = [_numpy(x) for x in stats_pos], [_numpy(x) for x in stats_neg]
    tokens, entropy, logits, correct = 0, 1, 2, 3  # TokenStats' fields

    def ratio(numerator: float, denominator: float) -> float:
        return float(numerator / denominator) if denominator > 0 else 0.0

    metrics = {
        "entropy": ratio(pos[entropy].sum() + neg[entropy].sum(), pos[tokens].sum() + neg[tokens].sum()),
        "mean_token_accuracy": ratio(pos[correct].sum(), pos[tokens].sum()),
    }
    for side, logps, columns in (("chosen", logp_pos, pos), ("rejected", logp_neg, neg)):
        if len(logps):
            metrics[f"logps/{side}"] = float(_numpy(logps).mean())
            metrics[f"logits/{side}"] = ratio(columns[logits].sum(), columns[tokens].sum())
    return metrics


def eval_metrics(
    scores: Scores, *, beta: float, cost: Cost = "logistic", label_smoothing: float = 0.0
) -> dict[str, float]:
    """Whole-set ``loss`` (the configured cost), dominance and reward metrics and, given the token
    statistics, TRL's policy metrics, as logged after ``eval_``."""
    if not (len(scores.reward_pos) and len(scores.reward_neg)):
        raise ValueError(
            f"the evaluation set has {len(scores.reward_pos)} positive and {len(scores.reward_neg)} negative "
            "samples; dominance needs both: add rows of the missing label to the evaluation set"
        )
    pos, neg = beta * scores.reward_pos, beta * scores.reward_neg
    metrics = {
        "loss": aot_loss(scores, beta=beta, cost=cost, label_smoothing=label_smoothing),
        **reward_metrics(pos, neg, paired=scores.paired),
    }
    if scores.stats_pos is not None and scores.stats_neg is not None:
        metrics.update(policy_metrics(scores.logp_pos, scores.logp_neg, scores.stats_pos, scores.stats_neg))
    return metrics


def greater_is_better(metric: str) -> bool:
    """Direction of ``metric_for_best_model`` (with or without the ``eval_`` prefix)."""
    return metric.removeprefix("eval_") not in LOWER_IS_BETTER and not metric.endswith("loss")


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return torch.as_tensor(x).detach().to("cpu", torch.float64).numpy()
