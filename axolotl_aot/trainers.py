"""AOT trainers: axolotl's DPO and KTO trainers with the loss computation replaced.

Each trainer overrides TRL's ``_compute_loss`` only: one policy forward for summed
completion log-probs, the reference log-probs exactly as TRL obtains them (precomputed
columns, an explicit reference model, or the adapter-disabled base for LoRA/QLoRA),
then the AOT loss over the configured sort scope. Data pipeline, collators, optimizer,
schedulers and checkpointing stay axolotl's and TRL's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from axolotl.core.trainers.dpo.trainer import AxolotlDPOTrainer
from axolotl.core.trainers.trl import AxolotlKTOTrainer
from trl.trainer.utils import selective_log_softmax

from axolotl_aot.args import AOTArgs
from axolotl_aot.distributed import all_gather_variable, gathered_loss, world_size
from axolotl_aot.dominance import dominance_stats
from axolotl_aot.losses import aot_paired_loss, aot_unpaired_loss
from axolotl_aot.sampler import LabelMixingSampler, check_both_labels


class AOTLossMixin:
    """What both AOT trainers share: log-probs, the scoped loss and the dominance metrics."""

    aot: AOTArgs = AOTArgs()  # replaced by AOTPlugin.post_trainer_create with the YAML's aot_* keys

    def _completion_logps(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """(batch,) log pi(completion | prompt) summed over completion tokens, as TRL computes it."""
        logits = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False
        ).logits
        per_token = selective_log_softmax(logits[:, :-1], inputs["input_ids"][:, 1:])
        return per_token.masked_fill(inputs["completion_mask"][:, 1:] == 0, 0.0).sum(-1)

    def _reference_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """TRL's ``compute_ref_log_probs`` disables the adapter itself when there is no reference model."""
        return self.ref_model if self.ref_model is not None else model

    def _scoped_loss(self, loss_fn: Callable[..., torch.Tensor], *local: torch.Tensor) -> torch.Tensor:
        """``loss_fn`` over this micro-batch (``local``) or over every rank's micro-batch (``world``).

        In ``world`` scope each rank's backward carries the exact dL/dr of its own samples;
        data-parallel gradient averaging divides by the world size, so it is put back here.
        """
        ranks = world_size()
        if self.aot.aot_sort_scope == "local" or ranks == 1:
            return loss_fn(*local)
        loss = gathered_loss(loss_fn, *local)
        return loss.detach() + ranks * (loss - loss.detach())

    def _scope(self, x: torch.Tensor) -> torch.Tensor:
        """The detached rewards that entered the sort (this rank's, or every rank's)."""
        if self.aot.aot_sort_scope == "local":
            return x.detach()
        return all_gather_variable(x.detach())[0]

    def _log_aot_metrics(self, mode: str, pos: torch.Tensor, neg: torch.Tensor, sort_size: int) -> None:
        """Dominance of the scope's positive over negative rewards (beta-scaled, as TRL's rewards/*)."""
        metrics = self._metrics[mode]
        metrics["aot/sort_size"].append(float(sort_size))
        if pos.numel() and neg.numel():
            stats = dominance_stats(pos, neg)
            metrics["aot/violation_fraction"].append(stats.violation_fraction)
            metrics["aot/violation_area"].append(stats.violation_area)
            metrics["aot/win_rate"].append(stats.win_rate)
            metrics["aot/min_quantile_margin"].append(stats.min_quantile_margin)
            metrics["rewards/chosen"].append(stats.mean_pos)
            metrics["rewards/rejected"].append(stats.mean_neg)
            metrics["rewards/margins"].append(stats.mean_pos - stats.mean_neg)

    def _loss_kwargs(self) -> dict[str, Any]:
        return {"beta": self.beta, "cost": self.aot.aot_cost, "label_smoothing": self.aot.aot_label_smoothing}


class AOTPairedTrainer(AOTLossMixin, AxolotlDPOTrainer):
    """``rl: aot``: the policy's chosen-vs-rejected log-ratios must dominate the reference's."""

    tag_names: ClassVar[list[str]] = ["axolotl", "aot"]

    def _compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False
    ) -> Any:
        mode = "train" if self.model.training else "eval"
        chosen, rejected = self._completion_logps(model, inputs).chunk(2)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self.compute_ref_log_probs(self._reference_model(model), inputs)
        loss_fn = functools.partial(aot_paired_loss, **self._loss_kwargs())
        loss = self._scoped_loss(loss_fn, chosen, rejected, ref_chosen, ref_rejected)

        chosen_rewards = self._scope(self.beta * (chosen - ref_chosen))
        rejected_rewards = self._scope(self.beta * (rejected - ref_rejected))
        self._log_aot_metrics(mode, chosen_rewards, rejected_rewards, sort_size=len(chosen_rewards))
        self._metrics[mode]["rewards/accuracies"].append(
            (chosen_rewards > rejected_rewards).float().mean().item()
        )
        return (loss, None) if return_outputs else loss


class AOTUnpairedTrainer(AOTLossMixin, AxolotlKTOTrainer):
    """``rl: aot_unpaired``: positive rewards must dominate negative rewards; no KL pass, n != m exact."""

    tag_names: ClassVar[list[str]] = ["axolotl", "aot"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = self.train_dataset["label"] if self.train_dataset is not None else []
        positives = sum(bool(label) for label in labels)
        if self.train_dataset is not None:
            check_both_labels(positives, len(labels) - positives)

    def _get_train_sampler(self, train_dataset: Any = None) -> LabelMixingSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return LabelMixingSampler(
            dataset["label"],
            batch_size=self.args.per_device_train_batch_size,
            ratio=self.aot.aot_label_ratio,
            seed=self.args.seed,
        )

    def _compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False
    ) -> Any:
        mode = "train" if self.model.training else "eval"
        logps = self._completion_logps(model, inputs)
        if self.precompute_ref_logps:
            ref_logps = inputs["ref_logps"]
        else:
            ref_logps = self.compute_ref_log_probs(self._reference_model(model), inputs)[0]
        rewards = logps - ref_logps
        labels = torch.as_tensor(inputs["label"], dtype=torch.bool, device=rewards.device)
        loss = self._scoped_loss(
            functools.partial(_unpaired_or_zero, **self._loss_kwargs()), rewards[labels], rewards[~labels]
        )

        pos, neg = self._scope(self.beta * rewards[labels]), self._scope(self.beta * rewards[~labels])
        self._metrics[mode]["aot/one_sided"].append(float(not (pos.numel() and neg.numel())))
        self._log_aot_metrics(mode, pos, neg, sort_size=pos.numel() + neg.numel())
        return (loss, None) if return_outputs else loss


def _unpaired_or_zero(pos: torch.Tensor, neg: torch.Tensor, **loss_kwargs: Any) -> torch.Tensor:
    """AOT of a scope with both labels; a one-sided scope has nothing to couple and contributes 0.

    The zero keeps the graph (and every rank's collective calls) intact instead of a NaN.
    """
    if pos.numel() and neg.numel():
        return aot_unpaired_loss(pos, neg, **loss_kwargs)
    return (pos.sum() + neg.sum()) * 0.0
