"""AOT losses: the optimal-transport relaxation of first-order stochastic dominance.

Melnyk, Mroueh et al., "Distributional Preference Alignment of LLMs via Optimal
Transport", NeurIPS 2024, arXiv:2406.05882.

The positive rewards u should dominate the negative rewards v: Q_u(t) >= Q_v(t)
for every quantile level t. The relaxed violation

    L = integral_0^1 h(beta * (Q_u(t) - Q_v(t))) dt                      (paper eq. 7)

is the exact OT cost between the two empirical measures with ground cost
h(beta * (u - v)), because the monotone coupling is optimal for a convex h. It is
computed by sorting, O((n + m) log(n + m)), for any sample sizes n and m
(docs/method.md, "The sorted coupling is the optimal transport cost" and "Unequal sizes:
the merged grid"). Pure torch: nothing here knows about trainers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from axolotl_aot.ot.quantiles import quantile_coupling

Cost = Literal["logistic", "squared_hinge", "least_squares"]
COSTS: tuple[str, ...] = get_args(Cost)


def cost_fn(z: torch.Tensor, cost: Cost = "logistic", label_smoothing: float = 0.0) -> torch.Tensor:
    """Elementwise convex relaxation h(z) of the 0/1 violation [z < 0] (docs/method.md, "Costs").

    logistic:      -(1 - eps) log sigmoid(z) - eps log sigmoid(-z)   (eps = label smoothing)
    squared_hinge: relu(1 - z)^2
    least_squares: (1 - z)^2
    """
    _check_cost(cost, label_smoothing)
    if cost == "logistic":
        return -(1.0 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    if cost == "squared_hinge":
        return torch.relu(1.0 - z).square()
    return (1.0 - z).square()


def aot_unpaired_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    *,
    beta: float,
    cost: Cost = "logistic",
    label_smoothing: float = 0.0,
    check_finite: bool = True,
) -> torch.Tensor:
    """Exact OT cost between the empirical measures of positive and negative rewards.

    Args:
        pos: (n,) implicit rewards log pi(y|x) - log pi_ref(y|x) of positive samples.
        neg: (m,) implicit rewards of negative samples; m may differ from n and the
            prompts need not match.
        beta: reward scale, > 0 (the paper recommends 0.01).
        cost: the convex relaxation h, one of ``COSTS``.
        label_smoothing: eps of the logistic cost, in [0, 0.5).
        check_finite: False skips only the finiteness check of the inputs, whose result the host
            must read (a device sync per call); the caller then runs ``check_finite`` on them
            itself, e.g. once per logged step (the AOT trainers do).

    Returns:
        0-d tensor sum_k w_k h(beta * (pos_(i_k) - neg_(j_k))) over the merged quantile
        grid; for n == m this is mean_i h(beta * (pos_(i) - neg_(i))) on sorted values.
        Computed and returned in float32 (float64 inputs stay float64), differentiable
        with respect to both inputs.
    """
    _check_scalars(beta, cost, label_smoothing)
    pos = _checked_rewards("pos", pos, check_finite)
    neg = _checked_rewards("neg", neg, check_finite)
    pos, neg = _as_compute_dtype(pos, neg)
    return _sorted_ot_cost(pos, neg, beta, cost, label_smoothing)


def aot_paired_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float,
    cost: Cost = "logistic",
    label_smoothing: float = 0.0,
    check_finite: bool = True,
) -> torch.Tensor:
    """Paired AOT: the policy's chosen-vs-rejected log-ratios must dominate the reference's.

    Args:
        policy_chosen_logps, policy_rejected_logps: (B,) summed completion log-probs
            under the policy for pair i's chosen and rejected answers.
        ref_chosen_logps, ref_rejected_logps: (B,) the same under the reference model.
        beta, cost, label_smoothing, check_finite: as in ``aot_unpaired_loss``.

    Returns:
        0-d tensor: the OT cost between a = chosen - rejected (policy) and
        b = chosen - rejected (reference), i.e. mean_i h(beta * (a_(i) - b_(i))) on sorted
        values. With B = 1 this is the DPO (cDPO with label smoothing) loss.
    """
    _check_scalars(beta, cost, label_smoothing)
    logps = {
        name: _checked_rewards(name, x, check_finite)
        for name, x in {
            "policy_chosen_logps": policy_chosen_logps,
            "policy_rejected_logps": policy_rejected_logps,
            "ref_chosen_logps": ref_chosen_logps,
            "ref_rejected_logps": ref_rejected_logps,
        }.items()
    }
    lengths = {name: x.numel() for name, x in logps.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"paired log-probs must have equal lengths; got {lengths}")
    pc, pr, rc, rr = _as_compute_dtype(*logps.values())
    return _sorted_ot_cost(pc - pr, rc - rr, beta, cost, label_smoothing)


def _sorted_ot_cost(
    u: torch.Tensor, v: torch.Tensor, beta: float, cost: Cost, label_smoothing: float
) -> torch.Tensor:
    """sum_k w_k h(beta * (u_(i_k) - v_(j_k))); gradients flow through the sorted values."""
    u_sorted = torch.sort(u).values
    v_sorted = torch.sort(v).values
    if u.numel() == v.numel():  # the merged grid is the identity coupling
        return cost_fn(beta * (u_sorted - v_sorted), cost, label_smoothing).mean()
    i, j, weight = _coupling_tensors(u.numel(), v.numel(), u.device, u.dtype)
    z = beta * (u_sorted[i] - v_sorted[j])
    return (weight * cost_fn(z, cost, label_smoothing)).sum()


@lru_cache(maxsize=64)
def _coupling_tensors(
    n: int, m: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``quantile_coupling(n, m)`` on ``device``, copied there once per sizes: a training run repeats
    a few batch sizes, and each copy from host memory would cost a transfer per loss call. Built
    outside inference mode: a cached inference tensor could not be saved for a later backward."""
    i, j, weight = quantile_coupling(n, m)
    with torch.inference_mode(False):
        return (
            torch.tensor(i, device=device),
            torch.tensor(j, device=device),
            torch.tensor(weight, device=device, dtype=dtype),
        )


def _check_cost(cost: str, label_smoothing: float) -> None:
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {', '.join(map(repr, COSTS))}; got {cost!r}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5); got {label_smoothing!r}")
    if label_smoothing and cost != "logistic":
        raise ValueError(
            f"label_smoothing applies to cost='logistic' only; got label_smoothing={label_smoothing!r} "
            f"with cost={cost!r} (set label_smoothing=0)"
        )


def _check_scalars(beta: float, cost: str, label_smoothing: float) -> None:
    if not (isinstance(beta, (int, float)) and 0.0 < beta < float("inf")):
        raise ValueError(f"beta must be a finite number > 0; got {beta!r}")
    _check_cost(cost, label_smoothing)


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise naming the first non-finite value of the loss input ``name``: what a loss called with
    ``check_finite=False`` left to its caller. Reading the answer syncs the host with ``x``'s device."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        index = int((~finite).nonzero()[0])
        raise ValueError(f"{name} has a non-finite value {x[index].item()} at index {index}")


def _checked_rewards(name: str, x: torch.Tensor, finite: bool = True) -> torch.Tensor:
    """``x`` after the checks that read only its metadata and, with ``finite``, ``check_finite``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D; got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty; AOT needs at least one sample on each side")
    if finite:
        check_finite(name, x)
    return x


def _as_compute_dtype(*xs: torch.Tensor) -> list[torch.Tensor]:
    """float32 at least (bf16/fp16 rewards lose the sort's resolution); float64 stays float64."""
    dtype = torch.float32
    for x in xs:
        dtype = torch.promote_types(dtype, x.dtype)
    return [x.to(dtype) for x in xs]
