"""AOT trainers: axolotl's DPO and KTO trainers with the loss computation replaced.

Each trainer overrides TRL's ``_compute_loss``: one policy forward for summed completion
log-probs, the reference log-probs exactly as TRL obtains them (precomputed columns, an
explicit reference model, or the adapter-disabled base for LoRA/QLoRA), then the AOT loss
over the configured sort scope. Data pipeline, collators, optimizer, schedulers and
checkpointing stay axolotl's and TRL's.

Log-probs come from ``logps``: the backbone's hidden states at completion positions through
the LM head in chunks, never the [tokens, vocab] logits, for the policy, the reference and
``precompute_ref_log_probs`` alike (the full logits when the head cannot be reproduced).

Sort scopes: ``local`` sorts one micro-batch (as TRL); ``world`` gathers every data-parallel
rank's micro-batch (``distributed.gathered_loss``); ``step`` sorts every micro-batch of the
optimizer step on every rank. For ``step``, ``get_batch_samples`` (the Trainer hook that
fetches a step's micro-batches) runs a no-grad scoring pass, computes each sample's exact
weight dL/dr from the global coupling and caches the reference log-probs; each
micro-batch then backpropagates a surrogate whose gradient is the large-batch gradient
(GradCache, applied to AOT: AOT-NOTES section 6).

Evaluation is whole-set: ``evaluation_loop`` (the Trainer's loop, not copied) has
``_compute_loss`` keep each row's log-probs on the CPU instead of logging per-batch
statistics, then gathers every rank's rows once and logs ``evaluation.eval_metrics``
of the whole set: the same function ``aot-cli report`` calls.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from accelerate.utils import is_peft_model

from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.compat import (
    AxolotlDPOTrainer,
    AxolotlKTOTrainer,
    ForwardRedirection,
    disable_gradient_checkpointing,
    selective_log_softmax,
    use_adapter,
)
from axolotl_aot.integration.evaluation import Scores, eval_metrics, reward_metrics
from axolotl_aot.integration.logps import ChunkedModel, chunked_head, sequence_logps
from axolotl_aot.integration.sampler import LabelMixingSampler, check_both_labels
from axolotl_aot.ot.distributed import (
    all_gather_variable,
    gathered_loss,
    loss_and_weights,
    surrogate,
    world_size,
)
from axolotl_aot.ot.losses import aot_paired_loss, aot_unpaired_loss

STEP_WEIGHTS = "aot_step_weights"  # batch key of the step scope's per-sample weights
LOG = logging.getLogger(__name__)


class AOTLossMixin:
    """What both AOT trainers share: the scoped loss, the step scope and the metrics.

    A trainer supplies ``_row_columns`` (per-row log-probs of a batch, as ``Scores.from_columns``
    reads them), ``_split`` (those columns as the tensors its loss takes, policy terms first),
    ``_loss_fn`` and ``_rewards`` (positive and negative rewards of those tensors).
    """

    aot: AOTArgs = AOTArgs()  # the YAML's aot_* keys, set by AOTPlugin.pre_model_load
    paired: ClassVar[bool]
    row_columns: ClassVar[int]  # how many per-row columns ``_row_columns`` returns
    policy_terms: ClassVar[int] = 2  # the first inputs of the loss carry the policy's gradient
    _eval_rows: list[list[torch.Tensor]] | None = None  # set while evaluation_loop runs

    def _row_columns(self, model: torch.nn.Module, inputs: dict[str, Any]) -> list[torch.Tensor]:
        raise NotImplementedError

    def _split(self, columns: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def _loss_inputs(self, model: torch.nn.Module, inputs: dict[str, Any]) -> list[torch.Tensor]:
        return self._split(self._row_columns(model, inputs))

    def _loss_fn(self) -> Callable[..., torch.Tensor]:
        raise NotImplementedError

    def _rewards(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False
    ) -> Any:
        mode = "train" if self.model.training else "eval"
        if self._eval_rows is not None:  # whole-set evaluation: keep the rows, log after the loop
            columns = self._row_columns(model, inputs)
            keep = self._real_rows(len(columns[0]))
            self._eval_rows.append([c[:keep].detach().float().cpu() for c in columns])
            loss = self._loss_fn()(*self._split(columns)).detach()
            return (loss, None) if return_outputs else loss
        tensors = self._loss_inputs(model, inputs)
        if STEP_WEIGHTS in inputs:  # weighed by the step's scoring pass; logs once per step from there
            # The Trainer divides each micro-batch's loss by the accumulation count and data
            # parallelism averages over ranks: both are put back so the step gets dL/dtheta.
            scale = self.current_gradient_accumulation_steps * world_size()
            loss = surrogate(self._aot_step_loss, tensors, inputs[STEP_WEIGHTS], scale=scale)
        else:
            loss = self._scoped_loss(self._loss_fn(), *tensors)
            self._log_aot_metrics(mode, *(self._scope(r.detach()) for r in self._rewards(tensors)))
        return (loss, None) if return_outputs else loss

    def _scoped_loss(self, loss_fn: Callable[..., torch.Tensor], *local: torch.Tensor) -> torch.Tensor:
        """``loss_fn`` over this micro-batch (``local``) or over every rank's micro-batch.

        Across ranks each backward carries the exact dL/dr of its own samples; data-parallel
        gradient averaging divides by the world size, so it is put back here.
        """
        ranks = world_size()
        if self.aot.aot_sort_scope == "local" or ranks == 1:
            return loss_fn(*local)
        loss = gathered_loss(loss_fn, *local)
        return loss.detach() + ranks * (loss - loss.detach())

    def _scope(self, x: torch.Tensor) -> torch.Tensor:
        """The detached values that entered the sort (this rank's, or every rank's)."""
        return x if self.aot.aot_sort_scope == "local" else all_gather_variable(x)[0]

    def evaluation_loop(
        self,
        dataloader: Any,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> Any:
        """The Trainer's loop with ``_compute_loss`` buffering rows; the metrics once over the whole set.

        Only the loss is predicted: AOT's metrics need the rewards, never the logits.
        """
        self._eval_rows = []
        try:
            output = super().evaluation_loop(dataloader, description, True, ignore_keys, metric_key_prefix)
            rows = self._eval_rows
        finally:
            self._eval_rows = None
        device = self.accelerator.device
        columns = [  # every rank's rows, in rank order; ranks may hold different numbers
            all_gather_variable(torch.cat([r[k] for r in rows] or [torch.empty(0)]).to(device))[0].cpu()
            for k in range(self.row_columns)
        ]
        metrics = eval_metrics(
            Scores.from_columns(self.paired, columns),
            beta=self.beta,
            cost=self.aot.aot_cost,
            label_smoothing=self.aot.aot_label_smoothing,
        )
        output.metrics.update({f"{metric_key_prefix}_{key}": value for key, value in metrics.items()})
        return output

    def _real_rows(self, count: int) -> int:
        """How many of this rank's ``count`` rows are evaluation rows rather than accelerate's padding.

        On several ranks accelerate completes the last batch of each rank with rows from the
        start of the set; ``gather_for_metrics`` keeps the first ``remainder`` rows of the
        rank-ordered concatenation of that batch. The same rule here counts each row once.
        """
        state = self.accelerator.gradient_state
        if not state.end_of_dataloader or state.remainder <= 0:
            return count
        return min(max(state.remainder - self.accelerator.process_index * count, 0), count)

    def get_batch_samples(
        self, epoch_iterator: Any, num_batches: int, device: torch.device
    ) -> tuple[list, Any]:
        batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.aot.aot_sort_scope == "step" and batch_samples:  # only the training loop calls this
            self._weigh_step(batch_samples)
        return batch_samples, num_items

    def _weigh_step(self, batch_samples: list[dict[str, Any]]) -> None:
        """Score every micro-batch of the step without gradients, couple the step's samples of
        all ranks, and store each micro-batch's exact weights (and reference log-probs) in it."""
        scored = []
        self.model.train()  # as training_step will: the first step comes before any training_step
        # The same autocast as the gradient pass, so that both see the same rewards.
        with torch.no_grad(), self.compute_loss_context_manager():
            for batch in batch_samples:
                inputs = self._prepare_inputs(batch)
                tensors = self._loss_inputs(self.model, inputs)
                batch.update({k: v for k, v in inputs.items() if k.startswith("ref_")})  # computed once
                scored.append([t.detach() for t in tensors])
        columns = [torch.cat(column) for column in zip(*scored, strict=True)]
        wrt = [k < self.policy_terms for k in range(len(columns))]
        self._aot_step_loss, weights = loss_and_weights(self._loss_fn(), *columns, wrt=wrt)
        step_weights: list[list[torch.Tensor | None]] = [[None] * len(columns) for _ in batch_samples]
        for k, weight in enumerate(weights):
            if weight is not None:
                for b, part in enumerate(weight.split([len(tensors[k]) for tensors in scored])):
                    step_weights[b][k] = part
        for batch, batch_weights in zip(batch_samples, step_weights, strict=True):
            batch[STEP_WEIGHTS] = tuple(batch_weights)
        pos, neg = self._rewards(columns)
        self._log_aot_metrics("train", all_gather_variable(pos)[0], all_gather_variable(neg)[0])

    def _log_aot_metrics(self, mode: str, pos: torch.Tensor, neg: torch.Tensor) -> None:
        """Dominance of the sort's positive over negative rewards (beta-scaled, as TRL's rewards/*)."""
        metrics = self._metrics[mode]
        pos, neg = self.beta * pos.float(), self.beta * neg.float()
        if not self.paired:
            metrics["aot/one_sided"].append(float(not (pos.numel() and neg.numel())))
        if pos.numel() and neg.numel():
            for key, value in reward_metrics(pos, neg, paired=self.paired).items():
                metrics[key].append(value)
        else:
            metrics["aot/sort_size"].append(float(len(pos) + len(neg)))

    def _completion_logps(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """(batch,) log pi(completion | prompt) summed over completion tokens, as TRL computes it."""
        unwrapped = self.accelerator.unwrap_model(model)
        chunked = self._chunked_model(unwrapped)
        if isinstance(chunked, str):
            logits = model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False
            ).logits
            per_token = selective_log_softmax(logits[:, :-1], inputs["input_ids"][:, 1:])
            return per_token.masked_fill(inputs["completion_mask"][:, 1:] == 0, 0.0).sum(-1)
        logps = functools.partial(sequence_logps, chunked, chunk_size=self.aot.aot_logits_chunk_size)
        tensors = {k: inputs[k] for k in ("input_ids", "attention_mask", "completion_mask")}
        if unwrapped is model:
            return logps(**tensors)
        # Through the wrapper's forward (DDP, DeepSpeed): its hooks must see the backbone's forward.
        return ForwardRedirection()(model, unwrapped, logps, **tensors)

    def _chunked_model(self, model: torch.nn.Module) -> ChunkedModel | str:
        """The backbone and head to compute log-probs without the logits, or why the full logits are used."""
        if self.aot.aot_logits_chunk_size == 0:
            reason: ChunkedModel | str = "aot_logits_chunk_size is 0"
        elif self.is_fsdp_enabled:
            reason = "FSDP shards the LM head"
        else:
            reason = chunked_head(model)
        if isinstance(reason, str) and reason not in self._logged_fallbacks:
            self._logged_fallbacks.add(reason)
            LOG.warning("AOT log-probs use the full [tokens, vocab] logits: %s", reason)
        return reason

    _logged_fallbacks: ClassVar[set[str]] = set()  # each reason is logged once per process

    def compute_ref_log_probs(self, model: torch.nn.Module, inputs: dict[str, Any]) -> tuple[Any, Any]:
        """TRL's reference pass (also what ``precompute_ref_log_probs`` calls) without the logits:
        under no_grad, through the reference model, or the adapter-disabled base for LoRA/QLoRA."""
        if isinstance(self._chunked_model(self.accelerator.unwrap_model(model)), str):
            return super().compute_ref_log_probs(model, inputs)
        adapter = contextlib.nullcontext()
        if self.ref_model is None and is_peft_model(self.model):
            peft_model = self.accelerator.unwrap_model(self.model)
            adapter = use_adapter(peft_model, adapter_name="ref" if "ref" in peft_model.peft_config else None)
        gradient_checkpointing = disable_gradient_checkpointing(
            self.model, self.args.gradient_checkpointing_kwargs
        )
        with torch.no_grad(), gradient_checkpointing, adapter:
            return self._reference_outputs(self._completion_logps(model, inputs))

    def _reference_outputs(self, logps: torch.Tensor) -> tuple[Any, Any]:
        """What TRL's ``compute_ref_log_probs`` returns, from the batch's reference log-probs."""
        raise NotImplementedError

    def _reference_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """TRL's ``compute_ref_log_probs`` disables the adapter itself when there is no reference model."""
        return self.ref_model if self.ref_model is not None else model

    def _loss_kwargs(self) -> dict[str, Any]:
        return {"beta": self.beta, "cost": self.aot.aot_cost, "label_smoothing": self.aot.aot_label_smoothing}


class AOTPairedTrainer(AOTLossMixin, AxolotlDPOTrainer):
    """``rl: aot``: the policy's chosen-vs-rejected log-ratios must dominate the reference's."""

    tag_names: ClassVar[list[str]] = ["axolotl", "aot"]
    paired = True
    row_columns = 4

    def _row_columns(self, model: torch.nn.Module, inputs: dict[str, Any]) -> list[torch.Tensor]:
        """Policy chosen, policy rejected, reference chosen, reference rejected log-probs of each pair."""
        chosen, rejected = self._completion_logps(model, inputs).chunk(2)
        if "ref_chosen_logps" not in inputs:  # precomputed by TRL, or cached by the step scope
            inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = self.compute_ref_log_probs(
                self._reference_model(model), inputs
            )
        return [chosen, rejected, inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]]

    def _reference_outputs(self, logps: torch.Tensor) -> tuple[Any, Any]:
        """(chosen, rejected): the collator stacks the chosen rows above the rejected ones."""
        return logps.chunk(2)

    def _split(self, columns: list[torch.Tensor]) -> list[torch.Tensor]:
        return columns

    def _loss_fn(self) -> Callable[..., torch.Tensor]:
        return functools.partial(aot_paired_loss, **self._loss_kwargs())

    def _rewards(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        chosen, rejected, ref_chosen, ref_rejected = tensors
        return chosen - ref_chosen, rejected - ref_rejected


class AOTUnpairedTrainer(AOTLossMixin, AxolotlKTOTrainer):
    """``rl: aot_unpaired``: positive rewards must dominate negative rewards; no KL pass, n != m exact."""

    tag_names: ClassVar[list[str]] = ["axolotl", "aot"]
    paired = False
    row_columns = 3

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sets = {"the training set": self.train_dataset, "the evaluation set": self.eval_dataset}
        for name, dataset in sets.items():
            if dataset is not None and "label" in getattr(dataset, "column_names", ()):
                labels = dataset["label"]
                positives = sum(bool(label) for label in labels)
                check_both_labels(positives, len(labels) - positives, name)

    def _get_train_sampler(self, train_dataset: Any = None) -> LabelMixingSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return LabelMixingSampler(
            dataset["label"],
            batch_size=self.args.per_device_train_batch_size,
            ratio=self.aot.aot_label_ratio,
            seed=self.args.seed,
        )

    def _row_columns(self, model: torch.nn.Module, inputs: dict[str, Any]) -> list[torch.Tensor]:
        """Policy log-prob, reference log-prob and label of each row."""
        logps = self._completion_logps(model, inputs)
        if "ref_logps" not in inputs:  # precomputed by TRL, or cached by the step scope
            inputs["ref_logps"] = self.compute_ref_log_probs(self._reference_model(model), inputs)[0]
        labels = torch.as_tensor(inputs["label"], dtype=logps.dtype, device=logps.device)
        return [logps, inputs["ref_logps"], labels]

    def _split(self, columns: list[torch.Tensor]) -> list[torch.Tensor]:
        """Rewards of the positives, rewards of the negatives."""
        logps, ref_logps, labels = columns
        rewards, positive = logps - ref_logps, labels.bool()
        return [rewards[positive], rewards[~positive]]

    def _reference_outputs(self, logps: torch.Tensor) -> tuple[Any, Any]:
        """(completion log-probs, KL log-probs): AOT has no KL pass."""
        return logps, None

    def _loss_fn(self) -> Callable[..., torch.Tensor]:
        return functools.partial(_unpaired_or_zero, **self._loss_kwargs())

    def _rewards(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return tensors[0], tensors[1]


def _unpaired_or_zero(pos: torch.Tensor, neg: torch.Tensor, **loss_kwargs: Any) -> torch.Tensor:
    """AOT of a scope with both labels; a one-sided scope has nothing to couple and contributes 0.

    The zero keeps the graph (and every rank's collective calls) intact instead of a NaN.
    """
    if pos.numel() and neg.numel():
        return aot_unpaired_loss(pos, neg, **loss_kwargs)
    return (pos.sum() + neg.sum()) * 0.0
