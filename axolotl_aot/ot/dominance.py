"""Empirical first-order stochastic dominance of positive over negative rewards.

AOT's goal is Q_pos(t) >= Q_neg(t) for every t in (0, 1) (docs/method.md, "Rewards and the
two modes" and "Whole-set evaluation statistics").
These statistics say how far a set of rewards is from that, exactly for any sample
sizes: training logs them every logging step and ``aot-cli report`` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from axolotl_aot.ot.quantiles import quantile_coupling

QUANTILE_LEVELS: tuple[float, ...] = tuple(k / 10 for k in range(1, 10))


@dataclass(frozen=True)
class DominanceStats:
    """How far the positive rewards are from dominating the negative ones.

    violation_fraction: measure of {t : Q_pos(t) < Q_neg(t)}; 0 = dominance holds,
        about 0.5 = nothing learned.
    violation_area: integral of (Q_neg(t) - Q_pos(t))_+ dt, in reward units.
    ks_statistic: sup_x |F_pos(x) - F_neg(x)|.
    win_rate: P(X > Y) + P(X = Y) / 2 for X ~ pos, Y ~ neg (the AUC).
    quantile_margins: Q_pos(t) - Q_neg(t) at t = 0.1, ..., 0.9 (``QUANTILE_LEVELS``).
    """

    n_pos: int
    n_neg: int
    violation_fraction: float
    violation_area: float
    ks_statistic: float
    win_rate: float
    quantile_margins: tuple[float, ...]
    min_quantile_margin: float
    mean_pos: float
    mean_neg: float


def dominance_stats(
    pos: torch.Tensor | np.ndarray | Sequence[float], neg: torch.Tensor | np.ndarray | Sequence[float]
) -> DominanceStats:
    """Dominance statistics of ``pos`` (n rewards) over ``neg`` (m rewards), exact for n != m."""
    u = np.sort(_as_array("pos", pos))
    v = np.sort(_as_array("neg", neg))
    n, m = len(u), len(v)
    i, j, weight = quantile_coupling(n, m)
    gap = u[i] - v[j]  # Q_pos - Q_neg on each interval of the merged grid
    margins = tuple(float(a - b) for a, b in zip(_quantiles(u), _quantiles(v), strict=True))
    points = np.concatenate([u, v])
    cdf_gap = np.searchsorted(u, points, side="right") / n - np.searchsorted(v, points, side="right") / m
    below = np.searchsorted(v, u, side="left")  # negatives strictly below each positive
    ties = np.searchsorted(v, u, side="right") - below
    return DominanceStats(
        n_pos=n,
        n_neg=m,
        violation_fraction=float(weight[gap < 0].sum()),
        violation_area=float((weight * np.maximum(-gap, 0.0)).sum()),
        ks_statistic=float(np.abs(cdf_gap).max()),
        win_rate=float((below + 0.5 * ties).sum() / (n * m)),
        quantile_margins=margins,
        min_quantile_margin=min(margins),
        mean_pos=float(u.mean()),
        mean_neg=float(v.mean()),
    )


def quantiles(x: torch.Tensor | np.ndarray | Sequence[float]) -> tuple[float, ...]:
    """The empirical quantile function of ``x`` at ``QUANTILE_LEVELS``, as the margins use it."""
    return _quantiles(np.sort(_as_array("x", x)))


def _quantiles(sorted_x: np.ndarray) -> tuple[float, ...]:
    """Q(t) = inf{x : F(x) >= t} at t = 0.1, ..., 0.9, i.e. the ceil(t n)-th smallest value.

    Integer arithmetic: 0.3 * 10 is 3.0000000000000004 in floating point, whose ceil is 4.
    """
    return tuple(float(sorted_x[-(-tenths * len(sorted_x) // 10) - 1]) for tenths in range(1, 10))


def _as_array(name: str, x: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers (a tensor, an array or a sequence); {err}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; dominance needs at least one sample on each side")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name} has a non-finite value {array[bad[0]]} at index {bad[0]}")
    return array
