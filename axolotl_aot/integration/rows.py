"""What a batch's rows are in each AOT mode, and how each mode turns them into its loss.

``rl: aot`` scores pairs: the policy's and the reference's log-probs of each chosen and rejected
completion. ``rl: aot_unpaired`` scores samples: each completion's policy and reference log-prob
and its label. ``PairedRows`` and ``UnpairedRows`` are the two layouts; the trainers, the sort
scopes, evaluation and ``aot-cli report`` read a batch's rows only through them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch

from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.logps import Completions, TokenStats
from axolotl_aot.ot.losses import aot_paired_loss, aot_unpaired_loss


class PairColumns(NamedTuple):
    """``rl: aot``: the log-probs of each pair, as ``Scores.from_columns`` reads them."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor


class SampleColumns(NamedTuple):
    """``rl: aot_unpaired``: the log-probs and label of each sample, as ``Scores.from_columns`` reads them."""

    logps: torch.Tensor
    ref_logps: torch.Tensor
    labels: torch.Tensor


Columns = PairColumns | SampleColumns
Reference = tuple[torch.Tensor, ...]  # a batch's reference log-probs, as the columns hold them


class Rows(NamedTuple):
    """A batch's per-row log-probs and the policy pass they came from (its token statistics and
    router loss; paired: one row per completion, the chosen completions first)."""

    columns: Columns
    policy: Completions


class Layout(Protocol):
    """One mode's rows: built from a forward, split into its loss inputs, and their rewards."""

    paired: bool
    columns: type[PairColumns] | type[SampleColumns]
    loss_names: tuple[str, ...]  # the loss's parameter names of ``loss_inputs``, as its errors name them

    def rows(self, policy: Completions, reference: Reference, inputs: dict[str, Any]) -> Rows: ...

    def precomputed(self, inputs: dict[str, Any]) -> Reference | None: ...

    def reference_of(self, columns: Columns) -> Reference: ...

    def reference_outputs(self, logps: torch.Tensor) -> tuple[Any, Any]: ...

    def loss_inputs(self, columns: Columns) -> list[torch.Tensor]: ...

    def rewards(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def positive_rows(self, columns: Columns) -> torch.Tensor: ...

    def loss(
        self, settings: AOTArgs, beta: float, *, check_finite: bool = True
    ) -> Callable[..., torch.Tensor]: ...


# The first loss inputs carry the policy's gradient (paired: chosen, rejected; unpaired: both rewards).
POLICY_TERMS = 2


def _loss_kwargs(settings: AOTArgs, beta: float, check_finite: bool) -> dict[str, Any]:
    return {
        "beta": beta,
        "cost": settings.aot_cost,
        "label_smoothing": settings.aot_label_smoothing,
        "check_finite": check_finite,
    }


class PairedRows:
    """``rl: aot``: the policy's chosen-vs-rejected log-ratios must dominate the reference's."""

    paired = True
    columns = PairColumns
    loss_names = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")

    def rows(self, policy: Completions, reference: Reference, inputs: dict[str, Any]) -> Rows:
        chosen, rejected = policy.logps.chunk(2)  # the collator stacks the chosen rows above the rejected
        return Rows(PairColumns(chosen, rejected, *reference), policy)

    def precomputed(self, inputs: dict[str, Any]) -> Reference | None:
        """TRL's precomputed reference columns (``precompute_ref_log_probs``), when the batch has them."""
        return (
            (inputs["ref_chosen_logps"], inputs["ref_rejected_logps"])
            if "ref_chosen_logps" in inputs
            else None
        )

    def reference_of(self, columns: Columns) -> Reference:
        return columns[2], columns[3]

    def reference_outputs(self, logps: torch.Tensor) -> tuple[Any, Any]:
        """What TRL's ``compute_ref_log_probs`` returns: (chosen, rejected)."""
        return logps.chunk(2)

    def loss_inputs(self, columns: Columns) -> list[torch.Tensor]:
        return list(columns)

    def rewards(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        chosen, rejected, ref_chosen, ref_rejected = tensors
        return chosen - ref_chosen, rejected - ref_rejected

    def positive_rows(self, columns: Columns) -> torch.Tensor:
        """Which forward rows are chosen completions: the first half."""
        pairs = len(columns[0])
        return torch.arange(2 * pairs, device=columns[0].device) < pairs

    def loss(
        self, settings: AOTArgs, beta: float, *, check_finite: bool = True
    ) -> Callable[..., torch.Tensor]:
        """``check_finite``: as in ``aot_paired_loss``."""
        return functools.partial(aot_paired_loss, **_loss_kwargs(settings, beta, check_finite))


class UnpairedRows:
    """``rl: aot_unpaired``: positive rewards must dominate negative rewards; no KL pass, n != m exact."""

    paired = False
    columns = SampleColumns
    loss_names = ("pos", "neg")

    def rows(self, policy: Completions, reference: Reference, inputs: dict[str, Any]) -> Rows:
        labels = torch.as_tensor(inputs["label"], dtype=policy.logps.dtype, device=policy.logps.device)
        return Rows(SampleColumns(policy.logps, reference[0], labels), policy)

    def precomputed(self, inputs: dict[str, Any]) -> Reference | None:
        return (inputs["ref_logps"],) if "ref_logps" in inputs else None

    def reference_of(self, columns: Columns) -> Reference:
        return (columns[1],)

    def reference_outputs(self, logps: torch.Tensor) -> tuple[Any, Any]:
        """What TRL's KTO ``compute_ref_log_probs`` returns: (completion log-probs, KL log-probs); AOT has
        no KL pass."""
        return logps, None

    def loss_inputs(self, columns: Columns) -> list[torch.Tensor]:
        """Rewards of the positives, rewards of the negatives."""
        logps, ref_logps, labels = columns
        rewards, positive = logps - ref_logps, labels.bool()
        return [rewards[positive], rewards[~positive]]

    def rewards(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return tensors[0], tensors[1]

    def positive_rows(self, columns: Columns) -> torch.Tensor:
        return columns[2].bool()

    def loss(
        self, settings: AOTArgs, beta: float, *, check_finite: bool = True
    ) -> Callable[..., torch.Tensor]:
        """``check_finite``: as in ``aot_unpaired_loss``."""
        return functools.partial(_unpaired_or_zero, **_loss_kwargs(settings, beta, check_finite))


def _unpaired_or_zero(pos: torch.Tensor, neg: torch.Tensor, **loss_kwargs: Any) -> torch.Tensor:
    """AOT of a scope with both labels; a one-sided scope has nothing to couple and contributes 0.

    The zero keeps the graph (and every rank's collective calls) intact instead of a NaN.
    """
    if pos.numel() and neg.numel():
        return aot_unpaired_loss(pos, neg, **loss_kwargs)
    return (pos.sum() + neg.sum()) * 0.0


def cpu_rows(layout: Layout, rows: Rows, keep: int) -> Rows:
    """The first ``keep`` rows (pairs, when paired) of ``rows``, detached on the CPU."""
    columns = layout.columns(*(c[:keep].detach().float().cpu() for c in rows.columns))
    if layout.paired:  # the policy pass holds the chosen rows, then the rejected rows
        half = len(rows.policy.logps) // 2
        kept = torch.cat([torch.arange(keep), half + torch.arange(keep)])
    else:
        kept = torch.arange(keep)
    stats = TokenStats(*(x.detach().float().cpu()[kept] for x in rows.policy.stats))
    aux = None if rows.policy.aux_loss is None else rows.policy.aux_loss.detach()
    return Rows(columns, Completions(rows.policy.logps.detach().float().cpu()[kept], stats, aux))
