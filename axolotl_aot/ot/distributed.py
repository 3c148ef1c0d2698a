"""Sorting across data-parallel ranks.

TRL sorts each device's micro-batch on its own; the paper's batch-size finding
(docs/method.md, "Sorting across ranks (world scope)") says the sort should see as many
samples as possible. Here every rank gathers all ranks' rewards (sizes may differ, zero
included), computes the same global loss, and keeps the exact gradient for its own samples:

1. all-gather the detached rewards, padded to the largest rank and then unpadded;
2. compute the loss on the global vectors and its gradient w_i = dL/dr_i with autograd;
3. return L + sum_own w_i (r_i - stop_grad(r_i)) (``surrogate``): its value is the global
   loss and its gradient with respect to this rank's rewards is exactly dL/dr_i.

No communication happens in backward and the weights are the ones the optimizer-step
scope (docs/method.md, "The step scope") reuses. A no-op when torch.distributed is not initialised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
from torch.distributed import ProcessGroup


def world_size(group: ProcessGroup | None = None) -> int:
    """Number of ranks in ``group``; 1 when torch.distributed is not initialised."""
    return dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1


def all_gather_variable(x: torch.Tensor, group: ProcessGroup | None = None) -> tuple[torch.Tensor, slice]:
    """Concatenate every rank's 1-D ``x`` in rank order; ranks may hold different sizes.

    Returns the detached global tensor and the slice of it that holds this rank's ``x``.
    """
    if x.dim() != 1:
        raise ValueError(f"all_gather_variable needs a 1-D tensor; got shape {tuple(x.shape)}")
    if world_size(group) == 1:
        return x.detach(), slice(0, x.numel())
    ranks = dist.get_world_size(group)
    size = torch.tensor([x.numel()], device=x.device, dtype=torch.long)
    sizes = [torch.empty_like(size) for _ in range(ranks)]
    dist.all_gather(sizes, size, group=group)
    counts = [int(s) for s in sizes]
    padded = torch.zeros(max(counts), device=x.device, dtype=x.dtype)
    padded[: x.numel()] = x.detach()
    chunks = [torch.empty_like(padded) for _ in range(ranks)]
    dist.all_gather(chunks, padded, group=group)
    rank = dist.get_rank(group)
    start = sum(counts[:rank])
    return torch.cat([chunk[:count] for chunk, count in zip(chunks, counts, strict=True)]), slice(
        start, start + x.numel()
    )


def loss_and_weights(
    loss_fn: Callable[..., torch.Tensor],
    *local: torch.Tensor,
    wrt: Sequence[bool],
    group: ProcessGroup | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """The global loss over every rank's ``local`` tensors and, for each ``local[k]`` with
    ``wrt[k]``, the exact gradient dL/d local[k] of its own samples (``None`` elsewhere).

    Works on detached values: the weights are what the optimizer-step scope applies to
    micro-batches scored earlier (docs/method.md, "The step scope").
    """
    gathered = [all_gather_variable(x, group) for x in local]
    leaves = [values.requires_grad_(flag) for (values, _), flag in zip(gathered, wrt, strict=True)]
    with torch.enable_grad():
        loss = loss_fn(*leaves)
    wanted = [leaf for leaf, flag in zip(leaves, wrt, strict=True) if flag]
    grads = iter(torch.autograd.grad(loss, wanted, materialize_grads=True) if wanted else ())
    weights = [next(grads)[own] if flag else None for (_, own), flag in zip(gathered, wrt, strict=True)]
    return loss.detach(), weights


def surrogate(
    loss: torch.Tensor,
    local: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor | None],
    scale: float = 1.0,
) -> torch.Tensor:
    """``loss`` in value; ``scale * weights[k]`` as the gradient with respect to ``local[k]``."""
    out = loss.detach()
    for x, weight in zip(local, weights, strict=True):
        if weight is not None:
            values = x.to(weight.dtype)
            out = out + scale * (weight * (values - values.detach())).sum()
    return out


def gathered_loss(
    loss_fn: Callable[..., torch.Tensor], *local: torch.Tensor, group: ProcessGroup | None = None
) -> torch.Tensor:
    """``loss_fn`` applied to the concatenation over ranks of each tensor in ``local``.

    Every rank gets the same value; backward gives each local tensor the exact gradient
    of the global loss with respect to its own samples. ``loss_fn`` must be deterministic
    so that all ranks agree. Without torch.distributed this is ``loss_fn(*local)``.
    """
    if world_size(group) == 1:
        return loss_fn(*local)
    loss, weights = loss_and_weights(loss_fn, *local, wrt=[x.requires_grad for x in local], group=group)
    return surrogate(loss, local, weights)
