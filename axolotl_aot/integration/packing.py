"""Padding-free batches: a micro-batch's real tokens packed into rows, without padding.

TRL's collators pad every sequence of a micro-batch to the longest one, and the model computes
the padding like any other token. Packed instead, each row holds several whole sequences one
after another, with ``position_ids`` restarting at 0 at each one and no 2-D attention mask.
transformers then finds each row's sequences from the positions (``masking_utils``' packed
sequence detection, which needs ``use_cache=False``) and builds a block-diagonal causal mask for
``sdpa`` and ``eager``; ``flash_attention_2``/``3`` read the same positions for their
variable-length kernels. A packed sequence's log-probs are those of its padded row
(docs/logps.md, "Padding-free batches").

Rows: ``sdpa`` and ``eager`` compute attention (and a dense mask) over a whole row, so a longer
row costs more attention per token but less filler. The row length is the one of the micro-batch's
longest sequence times 1, 2, 4, ... (first-fit decreasing) whose estimated work is least
(``RowCost``: the layers' matmuls per computed token, attention per pair of a row's tokens), and
the batch stays padded unless packing is estimated cheaper. Flash attention computes within
sequences only: one row. The tail of a row that sequences do not fill is one filler sequence of
its own, never read.

``Tokens`` is what the log-prob passes read either way (``padded`` or ``packed``), and
``packing_problem`` says why a model cannot take packed rows exactly. Pure torch and
transformers: nothing here knows of trainers.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

ONE_ROW = frozenset({"flash_attention_2", "flash_attention_3"})  # attention within sequences only
BOUNDED_ROWS = frozenset({"sdpa", "eager"})  # attention over whole rows: their length by RowCost
# What a model's module calls to build its mask; transformers' packed detection happens inside.
MASK_BUILDERS = ("create_causal_mask", "create_sliding_window_causal_mask")


@dataclass(frozen=True)
class Tokens:
    """A batch as the model computes it: the collator's padded rows, or its sequences packed.

    ``predicts`` and ``owner`` are shifted by one: the hidden state at t predicts token t+1.
    """

    input_ids: torch.Tensor  # (rows, T)
    attention_mask: torch.Tensor | None  # padded: the collator's; packed: None (positions say it)
    position_ids: torch.Tensor | None  # packed: 0, 1, ... within each sequence; padded: the model's own
    real: torch.Tensor  # (rows, T) 1 on the batch's tokens: the router loss's mask
    predicts: torch.Tensor  # (rows, T - 1) bool: the state at t predicts a completion token at t + 1
    owner: torch.Tensor  # (rows, T - 1) the batch row that token t + 1 belongs to
    sequences: int  # rows of the batch (the log-probs' length)

    def model_inputs(self) -> dict[str, Any]:
        """The keyword arguments of the model's (or backbone's) forward."""
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "use_cache": False}
        if self.position_ids is not None:
            inputs["position_ids"] = self.position_ids
        return inputs

    def targets(self) -> torch.Tensor:
        """(completion tokens,) the tokens the states at ``predicts`` predict."""
        return self.input_ids[:, 1:][self.predicts]

    def completion_owner(self) -> torch.Tensor:
        """(completion tokens,) the batch row of each token of ``targets``."""
        return self.owner[self.predicts]


def padded(input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor) -> Tokens:
    """The collator's batch as it is."""
    rows = torch.arange(len(input_ids), device=input_ids.device).unsqueeze(1)
    return Tokens(
        input_ids,
        attention_mask,
        None,
        attention_mask,
        completion_mask[:, 1:].bool(),
        rows.expand(-1, input_ids.shape[1] - 1),
        len(input_ids),
    )


def row_plan(lengths: list[int], capacity: int) -> list[list[int]]:
    """Sequences (by index) per row, first-fit decreasing into rows of ``capacity`` tokens."""
    rows: list[list[int]] = []
    free: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, space in enumerate(free) if space >= lengths[index]), None)
        if row is None:
            rows.append([])
            free.append(capacity)
            row = len(rows) - 1
        rows[row].append(index)
        free[row] -= lengths[index]
    return rows


def right_padded_lengths(attention_mask: torch.Tensor) -> list[int] | None:
    """Each row's token count when every row's tokens come first (the collators' right padding),
    else None: a row with padding before or between its tokens has other positions than packed."""
    mask = attention_mask.detach().to("cpu", torch.bool)
    lengths = mask.sum(1)
    expected = torch.arange(mask.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    return lengths.tolist() if torch.equal(mask, expected) else None


@dataclass(frozen=True)
class RowCost:
    """Estimated multiply-adds of one layer over ``rows`` rows of ``width`` tokens, with dense attention:
    ``rows * width * (linear + attention * width)``."""

    linear: float  # per token: the attention projections and the MLP, about 4 d^2 + 3 d i
    attention: float  # per token and token of its row: scores and values, 2 d

    @classmethod
    def of(cls, config: Any) -> RowCost:
        """From a transformers config's hidden and intermediate sizes."""
        hidden = config.hidden_size
        intermediate = getattr(config, "intermediate_size", None) or 4 * hidden
        return cls(4 * hidden * hidden + 3 * hidden * intermediate, 2 * hidden)

    def __call__(self, rows: int, width: int) -> float:
        return rows * width * (self.linear + self.attention * width)


def packed(
    input_ids: torch.Tensor, completion_mask: torch.Tensor, lengths: list[int], plan: list[list[int]]
) -> Tokens:
    """The right-padded batch's sequences (``lengths`` tokens each) in the rows of ``plan``, each as
    long as the longest row."""
    width = input_ids.shape[1]
    capacity = max(sum(lengths[s] for s in sequences) for sequences in plan)
    source = torch.full((len(plan), capacity), -1, dtype=torch.long)
    positions = torch.empty((len(plan), capacity), dtype=torch.long)
    for r, sequences in enumerate(plan):
        start = 0
        for s in sequences:
            n = lengths[s]
            source[r, start : start + n] = s * width + torch.arange(n)
            positions[r, start : start + n] = torch.arange(n)
            start += n
        positions[r, start:] = torch.arange(capacity - start)  # the filler: a sequence of its own
    device = input_ids.device
    source, positions = source.to(device), positions.to(device)
    real = source >= 0
    take = source.clamp(min=0)
    ids = input_ids.reshape(-1)[take].masked_fill(~real, 0)
    completion = completion_mask.reshape(-1)[take].bool() & real
    owner = torch.div(take, width, rounding_mode="floor")
    # A sequence's first token is predicted by nothing of its own (nor in the padded batch).
    predicts = completion[:, 1:] & (positions[:, 1:] != 0)
    return Tokens(ids, None, positions, real.long(), predicts, owner[:, 1:], len(input_ids))


def cheapest_plan(lengths: list[int], padded_width: int, cost: RowCost) -> list[list[int]] | None:
    """The rows (first-fit decreasing, at the longest sequence's length times a power of 2) of least
    estimated work, or None when none is cheaper than the padded batch."""
    best, best_cost = None, cost(len(lengths), padded_width)
    capacity, total = max(lengths), sum(lengths)
    while True:
        plan = row_plan(lengths, capacity)
        width = max(sum(lengths[s] for s in row) for row in plan)
        if cost(len(plan), width) < best_cost:
            best, best_cost = plan, cost(len(plan), width)
        if len(plan) == 1 or capacity >= total:
            return best
        capacity *= 2


def layout(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    attention: str | None,
    cost: RowCost,
) -> Tokens:
    """The batch packed for ``attention`` (a model's ``_attn_implementation``) in rows of least
    ``cost``, or as it is when packing is not cheaper or the batch is not right-padded."""
    lengths = right_padded_lengths(attention_mask)
    if lengths is None or not any(lengths):
        return padded(input_ids, attention_mask, completion_mask)
    if attention in ONE_ROW:
        plan: list[list[int]] | None = [list(range(len(lengths)))]
    else:
        plan = cheapest_plan(lengths, input_ids.shape[1], cost)
    if plan is None:
        return padded(input_ids, attention_mask, completion_mask)
    return packed(input_ids, completion_mask, lengths, plan)


def attention_of(model: nn.Module) -> str | None:
    """The model's attention implementation (``config._attn_implementation``)."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None)


def packing_problem(model: nn.Module) -> str | None:
    """Why ``model`` (a ``*ForCausalLM``, optionally a PEFT model) cannot compute packed rows exactly,
    or None when it can."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return class_problem(type(model), attention_of(model))


@functools.cache
def class_problem(model_class: type, attention: str | None) -> str | None:
    """Why a ``model_class`` model running ``attention`` cannot compute packed rows exactly, or None.
    Cached: the trainers ask before every forward, and the answer depends on these two only."""
    if attention not in ONE_ROW | BOUNDED_ROWS:
        return (
            f"attention implementation {attention!r} is not one that separates packed sequences "
            f"(one of {', '.join(sorted(ONE_ROW | BOUNDED_ROWS))})"
        )
    if "position_ids" not in inspect.signature(model_class.forward).parameters:
        return f"{model_class.__name__}.forward takes no position_ids"
    if attention in BOUNDED_ROWS:
        masking = importlib.import_module("transformers.masking_utils")
        # Its forward's module, not its class's: FSDP2 subclasses the model (FSDPLlamaForCausalLM) in torch.
        module = sys.modules.get(model_class.forward.__module__)
        if not hasattr(masking, "find_packed_sequence_indices"):
            return "this transformers release does not detect packed sequences in its attention masks"
        if module is None or not any(hasattr(module, name) for name in MASK_BUILDERS):
            return f"{model_class.__name__} builds its attention mask without transformers' masking_utils"
    return None
