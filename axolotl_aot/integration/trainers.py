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
(GradCache, applied to AOT: docs/method.md, "The step scope"). The gradient pass replays the
random state of its micro-batch's scoring pass (``rng``; docs/method.md, "Random state replay"),
so a stochastic forward (router jitter, dropout) computes the rewards that were coupled.

What TRL's DPO/KTO ``_compute_loss`` adds beyond its loss, the trainers add too: a
Mixture-of-Experts model's router load-balancing loss (``router_aux_loss_coef * aux_loss``,
detected and weighted by TRL's own constructor), and TRL's metrics (``logps/*``, ``logits/*``,
``entropy``, ``mean_token_accuracy``, ``num_tokens``, ``aux_loss``), taken from the chunked
log-prob pass (``logps.TokenStats``) instead of the logits.

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
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from accelerate.utils import is_peft_model

from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.compat import (
    AxolotlDPOTrainer,
    AxolotlKTOTrainer,
    ForwardRedirection,
    disable_gradient_checkpointing,
    maybe_gather_lm_head_ctx,
    selective_log_softmax,
    use_adapter,
)
from axolotl_aot.integration.evaluation import Scores, eval_metrics, policy_metrics, reward_metrics
from axolotl_aot.integration.logps import ChunkedModel, Completions, TokenStats, chunked_head, sequence_logps
from axolotl_aot.integration.rng import RandomState
from axolotl_aot.integration.sampler import LabelMixingSampler, check_both_labels
from axolotl_aot.integration.training_args import settings_of
from axolotl_aot.ot.distributed import (
    all_gather_variable,
    gathered_loss,
    loss_and_weights,
    surrogate,
    world_size,
)
from axolotl_aot.ot.losses import aot_paired_loss, aot_unpaired_loss

STEP_INDEX = "aot_step_index"  # batch key: the micro-batch's place in the step scope's ``StepPlan``
LOG = logging.getLogger(__name__)
# The step scope's gradient pass must reproduce the rewards its scoring pass coupled; beyond this
# relative difference the training log says that it does not.
REPLAY_TOLERANCE = 1e-4


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
    router loss)."""

    columns: Columns
    policy: Completions


@dataclass
class StepPlan:
    """The step scope's coupling of one optimizer step, made by the scoring pass
    (``_weigh_step``) and used by the gradient pass of each micro-batch, by index."""

    loss: torch.Tensor  # the step's loss over every rank's samples
    weights: list[tuple[torch.Tensor | None, ...]]  # per micro-batch: dL/d(each loss input)
    random: list[RandomState]  # per micro-batch: the random state its scoring forward started from
    scored: list[list[torch.Tensor]]  # per micro-batch: the loss inputs as scored
    references: list[Reference]  # per micro-batch: its reference log-probs, computed once


class AOTLossMixin:
    """What both AOT trainers share: the scoped loss, the step scope and the metrics.

    A trainer supplies ``_row_columns`` (per-row log-probs of a batch, as ``Scores.from_columns``
    reads them), ``_split`` (those columns as the tensors its loss takes, policy terms first),
    ``_loss_fn`` and ``_rewards`` (positive and negative rewards of those tensors).

    Its AOT settings (``self.aot``) come from its own training arguments (``training_args``):
    axolotl fills them from the YAML, ``factory.build_trainer`` from its caller.
    """

    paired: ClassVar[bool]
    columns: ClassVar[type[PairColumns] | type[SampleColumns]]
    policy_terms: ClassVar[int] = 2  # the first inputs of the loss carry the policy's gradient

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before TRL's constructor, which already scores the data for precompute_ref_log_probs.
        self._init_aot(settings_of(kwargs.get("args", args[2] if len(args) > 2 else None)))
        super().__init__(*args, **kwargs)

    def _init_aot(self, settings: AOTArgs) -> None:
        """The trainer's AOT settings and its state, before anything is scored."""
        self.aot = settings
        self._eval_rows: list[Rows] | None = None  # set while evaluation_loop runs
        self._step: StepPlan | None = None  # the step scope's current optimizer step
        self._replay_warned = False  # the step scope's replay check warns once
        self._logged_fallbacks: set[str] = set()  # each full-logits reason is logged once

    def _row_columns(
        self, model: torch.nn.Module, inputs: dict[str, Any], reference: Reference | None = None
    ) -> Rows:
        """The batch's rows; the reference log-probs are ``reference``, else the batch's precomputed
        columns, else computed."""
        raise NotImplementedError

    def _split(self, columns: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def _positive_rows(self, columns: list[torch.Tensor]) -> torch.Tensor:
        """Which rows of the policy pass are chosen/positive (bool, one per forward row)."""
        raise NotImplementedError

    def _loss_fn(self) -> Callable[..., torch.Tensor]:
        raise NotImplementedError

    def _rewards(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False
    ) -> Any:
        mode = "train" if self.model.training else "eval"
        if self._eval_rows is not None:  # whole-set evaluation: keep the rows, log after the loop
            rows = self._row_columns(model, inputs)
            self._eval_rows.append(self._cpu_rows(rows, self._real_rows(len(rows.columns[0]))))
            loss = self._loss_fn()(*self._split(rows.columns)).detach()
            return (loss, None) if return_outputs else loss
        index = inputs.get(STEP_INDEX)
        if index is not None:  # weighed by the step's scoring pass; logs once per step from there
            with self._step.random[index].replay():
                rows = self._row_columns(model, inputs, self._step.references[index])
            tensors = self._split(rows.columns)
            self._check_replay(self._step.scored[index], tensors)
            # The Trainer divides each micro-batch's loss by the accumulation count and data
            # parallelism averages over ranks: both are put back so the step gets dL/dtheta.
            scale = self.current_gradient_accumulation_steps * world_size()
            loss = surrogate(self._step.loss, tensors, self._step.weights[index], scale=scale)
        else:
            rows = self._row_columns(model, inputs)
            tensors = self._split(rows.columns)
            loss = self._scoped_loss(self._loss_fn(), *tensors)
            self._log_aot_metrics(mode, *(self._scope(r.detach()) for r in self._rewards(tensors)))
            self._log_policy_metrics(mode, [rows], [inputs])
        if rows.policy.aux_loss is not None:  # as TRL: the router's load balancing, per micro-batch
            loss = loss + self.router_aux_loss_coef * rows.policy.aux_loss
        return (loss, None) if return_outputs else loss

    def _check_replay(self, scored: list[torch.Tensor], tensors: list[torch.Tensor]) -> None:
        """Warn (once) when the gradient pass did not compute the rewards the scoring pass coupled."""
        if self._replay_warned:
            return
        for before, now in zip(scored[: self.policy_terms], tensors[: self.policy_terms], strict=True):
            difference = (now.detach() - before).abs().max().item() if now.numel() else 0.0
            if difference > REPLAY_TOLERANCE * max(1.0, before.abs().max().item()):
                self._replay_warned = True
                LOG.warning(
                    "aot_sort_scope: step: the gradient pass computed log-probs up to %.3g away from the "
                    "scoring pass of the same micro-batch, so the per-sample weights are approximate. The "
                    "random state of torch's CPU and CUDA generators is replayed; another source of "
                    "randomness or a nondeterministic kernel differs between the passes. Use "
                    "aot_sort_scope: world for an exact gradient.",
                    difference,
                )
                return

    def _log_policy_metrics(self, mode: str, rows: list[Rows], batches: list[dict[str, Any]]) -> None:
        """TRL's DPO/KTO metrics of the policy pass, over every rank's rows of ``rows``."""
        metrics = self._metrics[mode]
        policy = [r.policy for r in rows]
        logps = torch.cat([p.logps.detach() for p in policy])
        positive = torch.cat([self._positive_rows(r.columns) for r in rows])
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
        if mode == "train":
            for batch in batches:
                count = all_gather_variable(batch["attention_mask"].sum().reshape(1))[0].sum().item()
                self._total_train_tokens += count
            metrics["num_tokens"] = [self._total_train_tokens]

    def _cpu_rows(self, rows: Rows, keep: int) -> Rows:
        """The first ``keep`` rows (pairs, when paired) of ``rows``, detached on the CPU."""
        columns = [c[:keep].detach().float().cpu() for c in rows.columns]
        sequences = len(rows.policy.logps)
        if self.paired:  # the policy pass holds the chosen rows, then the rejected rows
            half = sequences // 2
            kept = torch.cat([torch.arange(keep), half + torch.arange(keep)])
        else:
            kept = torch.arange(keep)
        cpu_stats = TokenStats(*(x.detach().float().cpu()[kept] for x in rows.policy.stats))
        aux = None if rows.policy.aux_loss is None else rows.policy.aux_loss.detach()
        return Rows(columns, Completions(rows.policy.logps.detach().float().cpu()[kept], cpu_stats, aux))

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

        def gathered(parts: list[torch.Tensor]) -> torch.Tensor:
            """Every rank's rows, in rank order; ranks may hold different numbers."""
            return all_gather_variable(torch.cat(parts or [torch.empty(0)]).to(device))[0].cpu()

        columns = [gathered([r.columns[k] for r in rows]) for k in range(len(self.columns._fields))]
        sides = 2 if self.paired else 1  # a paired batch's rows: the chosen completions, then the rejected
        stats = TokenStats.cat(
            [
                TokenStats(
                    *(gathered([r.policy.stats[k].tensor_split(sides)[side] for r in rows]) for k in range(4))
                )
                for side in range(sides)
            ]
        )
        metrics = eval_metrics(
            Scores.from_columns(self.paired, columns, stats),
            beta=self.beta,
            cost=self.aot.aot_cost,
            label_smoothing=self.aot.aot_label_smoothing,
        )
        aux = [r.policy.aux_loss.float().reshape(1).to(device) for r in rows if r.policy.aux_loss is not None]
        if aux:  # the mean router loss of the evaluation batches, as TRL logs it
            metrics["aux_loss"] = gathered([a.detach() for a in aux]).mean().item()
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
        all ranks, and keep each micro-batch's exact weights and random state in ``self._step``
        (its reference log-probs too, computed once)."""
        scored, rows, random = [], [], []
        self.model.train()  # as training_step will: the first step comes before any training_step
        # The same autocast as the gradient pass, so that both see the same rewards.
        with torch.no_grad(), self.compute_loss_context_manager():
            for index, batch in enumerate(batch_samples):
                inputs = self._prepare_inputs(batch)
                random.append(RandomState.capture())
                rows.append(self._row_columns(self.model, inputs))
                batch[STEP_INDEX] = index
                scored.append([t.detach() for t in self._split(rows[-1].columns)])
        columns = [torch.cat(column) for column in zip(*scored, strict=True)]
        wrt = [k < self.policy_terms for k in range(len(columns))]
        loss, weights = loss_and_weights(self._loss_fn(), *columns, wrt=wrt)
        step_weights: list[list[torch.Tensor | None]] = [[None] * len(columns) for _ in batch_samples]
        for k, weight in enumerate(weights):
            if weight is not None:
                for b, part in enumerate(weight.split([len(tensors[k]) for tensors in scored])):
                    step_weights[b][k] = part
        references = [self._reference_of(r.columns) for r in rows]
        self._step = StepPlan(loss, [tuple(w) for w in step_weights], random, scored, references)
        pos, neg = self._rewards(columns)
        self._log_aot_metrics("train", all_gather_variable(pos)[0], all_gather_variable(neg)[0])
        self._log_policy_metrics("train", rows, batch_samples)

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
        return self._completions(model, inputs, policy=False).logps

    def _completions(self, model: torch.nn.Module, inputs: dict[str, Any], *, policy: bool) -> Completions:
        """One forward of ``model`` over the batch: the completion log-probs and, for the policy,
        TRL's token statistics and (a Mixture-of-Experts model) the router loss TRL adds."""
        unwrapped = self.accelerator.unwrap_model(model)
        aux_loss = policy and self.aux_loss_enabled
        chunked = self._chunked_model(unwrapped, aux_loss)
        tensors = {k: inputs[k] for k in ("input_ids", "attention_mask", "completion_mask")}
        if isinstance(chunked, str):
            extra = {"output_router_logits": True} if aux_loss else {}
            out = model(
                input_ids=tensors["input_ids"],
                attention_mask=tensors["attention_mask"],
                use_cache=False,
                **extra,
            )
            per_token = selective_log_softmax(out.logits[:, :-1], tensors["input_ids"][:, 1:])
            logps = per_token.masked_fill(tensors["completion_mask"][:, 1:] == 0, 0.0).sum(-1)
            stats = TokenStats.from_logits(out.logits, tensors["input_ids"], tensors["completion_mask"])
            return Completions(logps, stats if policy else None, out.aux_loss if aux_loss else None)
        logps = functools.partial(
            sequence_logps,
            chunked,
            chunk_size=self.aot.aot_logits_chunk_size,
            stats=policy,
            aux_loss=aux_loss,
        )
        if unwrapped is model and not self.is_fsdp_enabled:
            return logps(**tensors)
        # Through the wrapper's forward (DDP, DeepSpeed; FSDP2 shards in place, so ``unwrapped`` is
        # ``model``): its hooks must see the backbone's forward, to gather parameters and arm the
        # gradient reduction.
        return ForwardRedirection()(model, unwrapped, logps, **tensors)

    def _chunked_model(self, model: torch.nn.Module, aux_loss: bool = False) -> ChunkedModel | str:
        """The backbone and head to compute log-probs without the logits, or why the full logits are used."""
        if self.aot.aot_logits_chunk_size == 0:
            reason: ChunkedModel | str = "aot_logits_chunk_size is 0"
        elif self.is_fsdp_enabled and not self.accelerator.is_fsdp2:
            reason = "FSDP1 (fsdp_version: 1) flattens the LM head into its shards: use fsdp_version: 2"
        else:
            reason = chunked_head(model, gather=maybe_gather_lm_head_ctx)
            if aux_loss and not isinstance(reason, str) and reason.router_aux is None:
                reason = f"{type(model).__name__}'s router auxiliary loss is computed only by its own forward"
        if isinstance(reason, str) and reason not in self._logged_fallbacks:
            self._logged_fallbacks.add(reason)
            LOG.warning("AOT log-probs use the full [tokens, vocab] logits: %s", reason)
        return reason

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

    def _reference_of(self, columns: Columns) -> Reference:
        """The reference log-probs among ``columns``."""
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
    columns = PairColumns

    def _row_columns(
        self, model: torch.nn.Module, inputs: dict[str, Any], reference: Reference | None = None
    ) -> Rows:
        """Policy chosen, policy rejected, reference chosen, reference rejected log-probs of each pair."""
        policy = self._completions(model, inputs, policy=True)
        chosen, rejected = policy.logps.chunk(2)
        if reference is None and "ref_chosen_logps" in inputs:  # precomputed by TRL
            reference = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        if reference is None:
            reference = self.compute_ref_log_probs(self._reference_model(model), inputs)
        return Rows(PairColumns(chosen, rejected, *reference), policy)

    def _reference_of(self, columns: Columns) -> Reference:
        return columns.ref_chosen, columns.ref_rejected

    def _positive_rows(self, columns: list[torch.Tensor]) -> torch.Tensor:
        pairs = len(columns[0])
        return torch.arange(2 * pairs, device=columns[0].device) < pairs

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
    columns = SampleColumns

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sets = {"the training set": self.train_dataset, "the evaluation set": self.eval_dataset}
        for name, dataset in sets.items():
            if dataset is not None and "label" in getattr(dataset, "column_names", ()):
                check_both_labels(dataset["label"], name)

    def _get_train_sampler(self, train_dataset: Any = None) -> LabelMixingSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return LabelMixingSampler(
            dataset["label"],
            batch_size=self.args.per_device_train_batch_size,
            ratio=self.aot.aot_label_ratio,
            seed=self.args.seed,
        )

    def _row_columns(
        self, model: torch.nn.Module, inputs: dict[str, Any], reference: Reference | None = None
    ) -> Rows:
        """Policy log-prob, reference log-prob and label of each row."""
        policy = self._completions(model, inputs, policy=True)
        if reference is None and "ref_logps" in inputs:  # precomputed by TRL
            reference = (inputs["ref_logps"],)
        if reference is None:
            reference = self.compute_ref_log_probs(self._reference_model(model), inputs)[:1]
        labels = torch.as_tensor(inputs["label"], dtype=policy.logps.dtype, device=policy.logps.device)
        return Rows(SampleColumns(policy.logps, *reference, labels), policy)

    def _reference_of(self, columns: Columns) -> Reference:
        return (columns.ref_logps,)

    def _positive_rows(self, columns: list[torch.Tensor]) -> torch.Tensor:
        return columns[2].bool()

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
