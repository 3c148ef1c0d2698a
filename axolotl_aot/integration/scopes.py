"""The three sort scopes of training: which samples one OT sort couples, as strategies.

``local`` sorts one micro-batch (as TRL's ``aot`` loss); ``world`` gathers every data-parallel
rank's micro-batch (``distributed.gathered_loss``); ``step`` sorts every micro-batch of the
optimizer step on every rank. The trainer picks one from ``aot_sort_scope`` when it is built
(``scope_of``) and hands it each training micro-batch; evaluation has its own path
(``AOTTrainer.prediction_step``).

For ``step``, the trainer's ``get_batch_samples`` (the Trainer hook that fetches a step's
micro-batches) calls ``begin_step``: a no-grad scoring pass over every micro-batch, the exact
weight dL/dr of each sample from the global coupling, and each micro-batch's reference
log-probs. Each micro-batch then backpropagates a surrogate whose gradient is the large-batch
gradient (GradCache, applied to AOT: docs/method.md, "The step scope"), replaying the random
state of its scoring pass (``rng``; docs/method.md, "Random state replay") so that a stochastic
forward (router jitter, dropout) computes the rewards that were coupled.

Each scope logs the training metrics of its sort (dominance of the sorted rewards, TRL's policy
metrics) once per sort: per micro-batch for ``local``/``world``, per step for ``step``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from axolotl_aot.integration import compat
from axolotl_aot.integration.evaluation import policy_metrics, reward_metrics
from axolotl_aot.integration.logps import TokenStats
from axolotl_aot.integration.rng import RandomState
from axolotl_aot.integration.rows import POLICY_TERMS, Reference, Rows
from axolotl_aot.ot.distributed import (
    all_gather_variable,
    gathered_loss,
    loss_and_weights,
    surrogate,
    world_size,
)

if TYPE_CHECKING:
    from axolotl_aot.integration.trainers import AOTTrainer

LOG = logging.getLogger(__name__)
# The step scope's gradient pass must reproduce the rewards its scoring pass coupled; beyond this
# relative difference the training log says that it does not.
REPLAY_TOLERANCE = 1e-4


class Scope(Protocol):
    """How a training micro-batch's loss is sorted; ``begin_step`` sees each step's micro-batches first."""

    def begin_step(self, trainer: AOTTrainer, batches: list[dict[str, Any]]) -> None: ...

    def loss(
        self, trainer: AOTTrainer, model: torch.nn.Module, inputs: dict[str, Any]
    ) -> tuple[torch.Tensor, Rows]: ...


class LocalScope:
    """One micro-batch per sort, as TRL's ``aot`` loss."""

    def begin_step(self, trainer: AOTTrainer, batches: list[dict[str, Any]]) -> None:
        """Nothing to prepare: each micro-batch is its own sort."""

    def loss(
        self, trainer: AOTTrainer, model: torch.nn.Module, inputs: dict[str, Any]
    ) -> tuple[torch.Tensor, Rows]:
        rows = trainer.forward_rows(model, inputs)
        tensors = trainer.layout.loss_inputs(rows.columns)
        loss = self.sorted_loss(trainer, tensors)
        log_sort(trainer, *(self.sorted(r.detach()) for r in trainer.layout.rewards(tensors)))
        log_policy(trainer, [rows], [inputs])
        return loss, rows

    def sorted_loss(self, trainer: AOTTrainer, tensors: list[torch.Tensor]) -> torch.Tensor:
        return trainer.loss_fn(*tensors)

    def sorted(self, values: torch.Tensor) -> torch.Tensor:
        """The detached values that entered this rank's sort."""
        return values


class WorldScope(LocalScope):
    """The micro-batches of every data-parallel rank in one sort."""

    def sorted_loss(self, trainer: AOTTrainer, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Each backward carries the exact dL/dr of its own samples; data-parallel gradient averaging
        divides by the world size, so it is put back here."""
        ranks = world_size()
        if ranks == 1:
            return trainer.loss_fn(*tensors)
        loss = gathered_loss(trainer.loss_fn, *tensors)
        return loss.detach() + ranks * (loss - loss.detach())

    def sorted(self, values: torch.Tensor) -> torch.Tensor:
        return all_gather_variable(values)[0]


@dataclass
class MicroBatch:
    """What the step's scoring pass keeps of one micro-batch for its gradient pass."""

    shape: torch.Size  # its input_ids' shape: a micro-batch out of order does not match
    weights: tuple[torch.Tensor | None, ...]  # dL/d(each loss input) under the step's coupling
    random: RandomState  # the random state its scoring forward started from
    scored: list[torch.Tensor]  # the loss inputs as scored
    reference: Reference  # its reference log-probs, computed once


@dataclass
class StepScope:
    """Every micro-batch of the optimizer step, on every rank, in one sort.

    ``cursor`` is the next micro-batch of ``plan`` to train: the Trainer trains a step's
    micro-batches in the order ``get_batch_samples`` fetched them.
    """

    plan: list[MicroBatch] = field(default_factory=list)
    step_loss: torch.Tensor | None = None  # the step's loss over every rank's samples
    cursor: int = 0
    replay_warned: bool = False  # the replay check warns once

    def begin_step(self, trainer: AOTTrainer, batches: list[dict[str, Any]]) -> None:
        """Score every micro-batch without gradients, couple the step's samples of all ranks, and keep
        each micro-batch's exact weights, random state and reference log-probs."""
        scored, rows, random, shapes = [], [], [], []
        trainer.model.train()  # as training_step will: the first step comes before any training_step
        # The same autocast as the gradient pass, so that both see the same rewards.
        with torch.no_grad(), trainer.compute_loss_context_manager():
            for batch in batches:
                inputs = compat.prepare_inputs(trainer, batch)
                shapes.append(inputs["input_ids"].shape)
                random.append(RandomState.capture())
                rows.append(trainer.forward_rows(trainer.model, inputs))
                scored.append([t.detach() for t in trainer.layout.loss_inputs(rows[-1].columns)])
        columns = [torch.cat(column) for column in zip(*scored, strict=True)]
        wrt = [k < POLICY_TERMS for k in range(len(columns))]
        self.step_loss, weights = loss_and_weights(trainer.loss_fn, *columns, wrt=wrt)
        per_batch: list[list[torch.Tensor | None]] = [[None] * len(columns) for _ in batches]
        for k, weight in enumerate(weights):
            if weight is not None:
                for b, part in enumerate(weight.split([len(tensors[k]) for tensors in scored])):
                    per_batch[b][k] = part
        self.plan = [
            MicroBatch(shape, tuple(w), state, s, trainer.layout.reference_of(r.columns))
            for shape, w, state, s, r in zip(shapes, per_batch, random, scored, rows, strict=True)
        ]
        self.cursor = 0
        pos, neg = trainer.layout.rewards(columns)
        log_sort(trainer, all_gather_variable(pos)[0], all_gather_variable(neg)[0])
        log_policy(trainer, rows, batches)

    def loss(
        self, trainer: AOTTrainer, model: torch.nn.Module, inputs: dict[str, Any]
    ) -> tuple[torch.Tensor, Rows]:
        """The surrogate of the next micro-batch: its gradient is the step loss's, for its samples."""
        planned = self.plan[self.cursor] if self.cursor < len(self.plan) else None
        if planned is None or planned.shape != inputs["input_ids"].shape:
            raise RuntimeError(
                "aot_sort_scope: step: the Trainer trained a micro-batch that the step's scoring pass "
                f"did not weigh (micro-batch {self.cursor + 1} of {len(self.plan)} scored). The step scope "
                "needs the Trainer to train the micro-batches get_batch_samples fetched, in order; use "
                "aot_sort_scope: world with this trainer."
            )
        micro = self.plan[self.cursor]
        self.cursor += 1
        with micro.random.replay():
            rows = trainer.forward_rows(model, inputs, micro.reference)
        tensors = trainer.layout.loss_inputs(rows.columns)
        self._check_replay(micro.scored, tensors)
        # The Trainer divides each micro-batch's loss by the accumulation count and data parallelism
        # averages over ranks: both are put back so the step gets dL/dtheta.
        scale = trainer.current_gradient_accumulation_steps * world_size()
        return surrogate(self.step_loss, tensors, micro.weights, scale=scale), rows

    def _check_replay(self, scored: list[torch.Tensor], tensors: list[torch.Tensor]) -> None:
        """Warn (once) when the gradient pass did not compute the rewards the scoring pass coupled."""
        if self.replay_warned:
            return
        for before, now in zip(scored[:POLICY_TERMS], tensors[:POLICY_TERMS], strict=True):
            difference = (now.detach() - before).abs().max().item() if now.numel() else 0.0
            if difference > REPLAY_TOLERANCE * max(1.0, before.abs().max().item()):
                self.replay_warned = True
                LOG.warning(
                    "aot_sort_scope: step: the gradient pass computed log-probs up to %.3g away from the "
                    "scoring pass of the same micro-batch, so the per-sample weights are approximate. The "
                    "random state of torch's CPU and CUDA generators is replayed; another source of "
                    "randomness or a nondeterministic kernel differs between the passes. Use "
                    "aot_sort_scope: world for an exact gradient.",
                    difference,
                )
                return


def scope_of(name: str) -> Scope:
    """The strategy of ``aot_sort_scope: name``."""
    return {"local": LocalScope, "world": WorldScope, "step": StepScope}[name]()


def log_sort(trainer: AOTTrainer, pos: torch.Tensor, neg: torch.Tensor) -> None:
    """Dominance of the sort's positive over negative rewards (beta-scaled, as TRL's rewards/*)."""
    metrics = compat.metrics(trainer, "train")
    pos, neg = trainer.beta * pos.float().cpu(), trainer.beta * neg.float().cpu()  # the metrics read them
    if not (torch.isfinite(pos).all() and torch.isfinite(neg).all()):
        return  # the trainer's ``log`` raises the loss's own error for them
    if not trainer.layout.paired:
        metrics["aot/one_sided"].append(float(not (pos.numel() and neg.numel())))
    if pos.numel() and neg.numel():
        for key, value in reward_metrics(pos, neg, paired=trainer.layout.paired).items():
            metrics[key].append(value)
    else:
        metrics["aot/sort_size"].append(float(len(pos) + len(neg)))


def log_policy(trainer: AOTTrainer, rows: list[Rows], batches: list[dict[str, Any]]) -> None:
    """TRL's DPO/KTO training metrics of the policy pass, over every rank's rows of ``rows``."""
    metrics = compat.metrics(trainer, "train")
    policy = [r.policy for r in rows]
    logps = torch.cat([p.logps.detach() for p in policy])
    positive = torch.cat([trainer.layout.positive_rows(r.columns) for r in rows])
    stats = TokenStats.cat([p.stats for p in policy])
    logps, positive, *stats = (all_gather_variable(x.float())[0] for x in (logps, positive, *stats))
    positive, stats = positive.bool(), TokenStats(*stats)
    values = policy_metrics(
        logps[positive], logps[~positive], stats.select(positive), stats.select(~positive)
    )
    for key, value in values.items():
        metrics[key].append(value)
    for p in policy:
        if p.aux_loss is not None:
            metrics["aux_loss"].append(
                all_gather_variable(p.aux_loss.detach().float().reshape(1))[0].mean().item()
            )
    for batch in batches:
        tokens = all_gather_variable(batch["attention_mask"].sum().reshape(1))[0].sum().item()
        metrics["num_tokens"] = [compat.count_train_tokens(trainer, tokens)]
