"""Sorting across data-parallel ranks.

TRL sorts each device's micro-batch on its own; the paper's batch-size finding
(AOT-NOTES section 6) says the sort should see as many samples as possible. Here
every rank gathers all ranks' rewards (sizes may differ, zero included), computes
the same global loss, and keeps the exact gradient for its own samples:

1. all-gather the detached rewards, padded to the largest rank and then unpadded;
2. compute the loss on the global vectors and its gradient w_i = dL/dr_i with autograd;
3. return L + sum_own w_i (r_i - stop_grad(r_i)): its value is the global loss and its
   gradient with respect to this rank's rewards is exactly dL/dr_i.

No communication happens in backward and the weights are the ones the optimizer-step
scope (AOT-NOTES section 6) reuses. A no-op when torch.distributed is not initialised.
"""

from __future__ import annotations

from collections.abc import Callable

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
    gathered = [all_gather_variable(x, group) for x in local]
    for (leaf, _), x in zip(gathered, local, strict=True):
        leaf.requires_grad_(x.requires_grad)
    with torch.enable_grad():
        loss = loss_fn(*(leaf for leaf, _ in gathered))
    surrogate = loss.detach()
    trainable = [(x, leaf, own) for x, (leaf, own) in zip(local, gathered, strict=True) if x.requires_grad]
    if trainable:
        weights = torch.autograd.grad(loss, [leaf for _, leaf, _ in trainable], materialize_grads=True)
        for (x, _, own), weight in zip(trainable, weights, strict=True):
            reward = x.to(weight.dtype)
            surrogate = surrogate + (weight[own] * (reward - reward.detach())).sum()
    return surrogate
