"""What a generation report says of a policy's samples against its reference's.

Samples are prompt-major: with K samples per prompt, sample i belongs to prompt i // K. Both
models are sampled on the same prompts with the same seeds (``sampling.sample``), so a model
compared with itself draws the same completions and gets exactly KL 0 and win rate 0.5
(docs/evaluating.md, "Generation report").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from axolotl_aot.ot.dominance import dominance_stats, quantiles


def kl_per_token(log_ratios: np.ndarray, tokens: np.ndarray, per_prompt: int) -> tuple[float, float | None]:
    """Sampled KL(policy || reference) per completion token, and its standard error.

    ``log_ratios[i]`` is the summed log pi - log pi_ref over the ``tokens[i]`` tokens of policy
    sample i. The estimate is sum(log-ratios) / sum(tokens): a ratio of means, consistent for the
    KL per token of the sampling distribution (each token's log-ratio has the per-step KL as its
    expectation; the number of tokens is a stopping time). The standard error is the ratio
    estimator's (delta method) with prompts as the independent units, since the samples of one
    prompt are correlated; None for a single prompt.
    """
    ratio = np.asarray(log_ratios, dtype=np.float64).reshape(-1, per_prompt).sum(axis=1)
    count = np.asarray(tokens, dtype=np.float64).reshape(-1, per_prompt).sum(axis=1)
    estimate = float(ratio.sum() / count.sum())
    prompts = len(ratio)
    if prompts < 2:
        return estimate, None
    residual = ratio - estimate * count
    variance = prompts / (prompts - 1) * float((residual**2).sum()) / float(count.sum()) ** 2
    return estimate, variance**0.5


def win_rate(policy: np.ndarray, reference: np.ndarray, per_prompt: int) -> float:
    """P(a policy sample's reward beats a reference sample's of the same prompt), ties counting half.

    Sample j of the policy and sample j of the reference are drawn with the same random numbers (the
    same seed), so they are alike, and more so the closer the two models: such couples would pull the
    rate towards 0.5. Only couples (j, j') with j != j', drawn independently, are counted; a model
    against itself still gets exactly 0.5 (each couple is met both ways). Needs two samples a prompt.
    """
    if per_prompt < 2:
        raise ValueError("the win rate needs at least 2 samples per prompt (--samples 2)")
    ours = np.asarray(policy, dtype=np.float64).reshape(-1, per_prompt, 1)
    theirs = np.asarray(reference, dtype=np.float64).reshape(-1, 1, per_prompt)
    score = (ours > theirs) + 0.5 * (ours == theirs)
    independent = ~np.eye(per_prompt, dtype=bool)
    return float(score[:, independent].mean())


@dataclass(frozen=True)
class GenerationStats:
    """One checkpoint's samples against its reference's, as ``report.json`` holds them.

    Rewards are the user's reward model's or function's; quantiles at t = 0.1, ..., 0.9. The
    dominance statistics (``ot.dominance``) are those of the policy's rewards over the reference's:
    violation_fraction 0 = the policy's reward distribution dominates the reference's.
    """

    samples: int  # policy samples (as many reference samples)
    prompts: int
    samples_per_prompt: int
    reward_mean: float
    reference_reward_mean: float
    reward_quantiles: tuple[float, ...]
    reference_reward_quantiles: tuple[float, ...]
    win_rate: float
    violation_fraction: float
    violation_area: float
    quantile_margins: tuple[float, ...]
    min_quantile_margin: float
    kl_per_token: float
    kl_standard_error: float | None
    mean_tokens: float  # completion tokens per policy sample, the end token included
    reference_mean_tokens: float
    unfinished: float  # share of policy samples cut at max_new_tokens, without an end token

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def generation_stats(
    rewards: np.ndarray,
    reference_rewards: np.ndarray,
    log_ratios: np.ndarray,
    tokens: np.ndarray,
    reference_tokens: np.ndarray,
    ended: np.ndarray,
    per_prompt: int,
) -> GenerationStats:
    """The statistics of one policy's samples (rewards, log-ratios, lengths) against its reference's."""
    dominance = dominance_stats(rewards, reference_rewards)
    kl, standard_error = kl_per_token(log_ratios, tokens, per_prompt)
    return GenerationStats(
        samples=len(rewards),
        prompts=len(rewards) // per_prompt,
        samples_per_prompt=per_prompt,
        reward_mean=dominance.mean_pos,
        reference_reward_mean=dominance.mean_neg,
        reward_quantiles=quantiles(rewards),
        reference_reward_quantiles=quantiles(reference_rewards),
        win_rate=win_rate(rewards, reference_rewards, per_prompt),
        violation_fraction=dominance.violation_fraction,
        violation_area=dominance.violation_area,
        quantile_margins=dominance.quantile_margins,
        min_quantile_margin=dominance.min_quantile_margin,
        kl_per_token=kl,
        kl_standard_error=standard_error,
        mean_tokens=float(np.mean(tokens)),
        reference_mean_tokens=float(np.mean(reference_tokens)),
        unfinished=float(1.0 - np.mean(ended)),
    )
