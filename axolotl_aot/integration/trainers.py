"""AOT trainers: axolotl's DPO and KTO trainers with the loss computation replaced.

Each trainer overrides TRL's ``_compute_loss`` (training) and ``prediction_step`` (evaluation):
one policy forward for summed completion log-probs, the reference log-probs exactly as TRL
obtains them (precomputed columns, an explicit reference model, or the adapter-disabled base for
LoRA/QLoRA), then the AOT loss over the sort scope chosen at construction (``scopes``). Data
pipeline, collators, optimizer, schedulers and checkpointing stay axolotl's and TRL's. Every
TRL/transformers name the trainers override or read is checked by ``compat`` when this module
is imported.

Log-probs come from ``logps``: the backbone's hidden states at completion positions through
the LM head in chunks, never the [tokens, vocab] logits, for the policy, the reference and
``precompute_ref_log_probs`` alike (the full logits when the head cannot be reproduced). Every
forward takes the micro-batch's sequences packed without padding (``packing``, ``aot_padding_free``)
where the model separates packed sequences exactly; with ``torch_compile`` the backbone those
passes call is compiled. The loss calls skip the finiteness check's device sync: ``log`` checks
the recorded inputs once per logged step and raises the loss's own error.

What TRL's DPO/KTO ``_compute_loss`` adds beyond its loss, the trainers add too: a
Mixture-of-Experts model's router load-balancing loss (``router_aux_loss_coef * aux_loss``,
detected and weighted by TRL's own constructor), and TRL's metrics (``logps/*``, ``logits/*``,
``entropy``, ``mean_token_accuracy``, ``num_tokens``, ``aux_loss``), taken from the chunked
log-prob pass (``logps.TokenStats``) instead of the logits.

Evaluation is whole-set: ``evaluation_loop`` (the Trainer's loop, not copied) has
``prediction_step`` keep each row's log-probs on the CPU, then gathers every rank's rows once
and logs ``evaluation.eval_metrics`` of the whole set: the same function ``aot-cli report``
calls, on the rows ``score_batch`` gives it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from accelerate.utils import is_compiled_module, is_peft_model
from datasets import Dataset

from axolotl_aot.integration import compat, packing
from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.evaluation import Scores, eval_metrics
from axolotl_aot.integration.labels import check_both_labels, with_bool_labels
from axolotl_aot.integration.logps import (
    ChunkedModel,
    Completions,
    TokenStats,
    chunked_head,
    per_row,
    router_aux_loss,
    sequence_logps,
)
from axolotl_aot.integration.packing import Tokens
from axolotl_aot.integration.rows import Layout, PairedRows, Reference, Rows, UnpairedRows, cpu_rows
from axolotl_aot.integration.sampler import LabelMixingSampler
from axolotl_aot.integration.scopes import Scope, scope_of
from axolotl_aot.integration.training_args import settings_of
from axolotl_aot.ot.distributed import all_gather_variable
from axolotl_aot.ot.losses import check_finite

LOG = logging.getLogger(__name__)
# At most this many loss inputs wait for ``log`` (``predict`` and a long logging_steps never log).
UNCHECKED_LIMIT = 256


class AOTTrainer:
    """What both AOT trainers share; mixed in before axolotl's DPO or KTO trainer.

    A trainer's ``layout`` (``rows``) says what its rows are. Its AOT settings (``self.aot``)
    come from its own training arguments (``training_args``): axolotl fills them from the YAML,
    ``factory.build_trainer`` from its caller.
    """

    layout: ClassVar[Layout]

    def __init__(self, model: Any = None, ref_model: Any = None, *, args: Any = None, **kwargs: Any) -> None:
        # Before TRL's constructor, which already scores the data for precompute_ref_log_probs.
        self._init_aot(settings_of(args))
        super().__init__(model, ref_model, args=args, **kwargs)
        compat.check_trainer_state(self)

    def _init_aot(self, settings: AOTArgs) -> None:
        """The trainer's AOT settings, its sort scope and its own state, before anything is scored."""
        self.aot = settings
        self.scope: Scope = scope_of(settings.aot_sort_scope)
        self._evaluation: list[Rows] | None = None  # the rows of the evaluation loop that is running
        self._logged_fallbacks: set[str] = set()  # each fallback's reason is logged once
        self._compiled_backbones: dict[torch.nn.Module, torch.nn.Module] = {}  # torch_compile
        self._unchecked: list[tuple[str, torch.Tensor]] = []  # loss inputs whose finiteness ``log`` checks

    @property
    def loss_fn(self) -> Callable[..., torch.Tensor]:
        """The AOT loss of this trainer's mode, beta and settings, without the device sync of its
        finiteness check: each call records its detached inputs, and ``log`` checks them."""
        loss = self.layout.loss(self.aot, self.beta, check_finite=False)

        def checked_at_log(*tensors: torch.Tensor) -> torch.Tensor:
            value = loss(*tensors)
            if len(self._unchecked) >= UNCHECKED_LIMIT:
                self._check_loss_inputs()
            self._unchecked.extend(zip(self.layout.loss_names, (t.detach() for t in tensors), strict=True))
            return value

        return checked_at_log

    # -- training ---------------------------------------------------------------------------------

    def _compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False
    ) -> Any:
        """One training micro-batch's loss, sorted by the scope; as TRL, plus the router's load balancing."""
        loss, rows = self.scope.loss(self, model, inputs)
        if rows.policy.aux_loss is not None:
            loss = loss + self.router_aux_loss_coef * rows.policy.aux_loss
        return (loss, None) if return_outputs else loss

    def training_step(
        self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        """TRL's training step (``compat.trl_training_step``: without axolotl 0.19's per-step garbage
        collection)."""
        return compat.trl_training_step(self, model, inputs, num_items_in_batch)

    def get_batch_samples(
        self, epoch_iterator: Any, num_batches: int, device: torch.device
    ) -> tuple[list, Any]:
        """The Trainer's fetch of an optimizer step's micro-batches (only its training loop calls it),
        shown to the scope before any of them trains."""
        batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if batch_samples:
            self.scope.begin_step(self, batch_samples)
        return batch_samples, num_items

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """TRL's log (training and evaluation), after the finiteness check the loss calls deferred: a
        non-finite loss input raises the loss's own error here, one device sync per log, not per call."""
        self._check_loss_inputs()
        super().log(logs, start_time)

    def _check_loss_inputs(self) -> None:
        """``check_finite`` on the loss inputs recorded since the last check (``loss_fn``), in call order."""
        unchecked, self._unchecked = self._unchecked, []
        if not unchecked:
            return
        device = unchecked[0][1].device
        finite = torch.stack([torch.isfinite(x).all().to(device) for _, x in unchecked])
        if not bool(finite.all()):  # the one sync; the loop finds and names the first non-finite value
            for name, x in unchecked:
                check_finite(name, x)

    # -- evaluation -------------------------------------------------------------------------------

    def evaluation_loop(
        self,
        dataloader: Any,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> Any:
        """The Trainer's loop with ``prediction_step`` keeping rows; the metrics once over the whole set.

        Only the loss is predicted: AOT's metrics need the rewards, never the logits.
        """
        self._evaluation = []
        try:
            output = super().evaluation_loop(dataloader, description, True, ignore_keys, metric_key_prefix)
            rows = self._evaluation
        finally:
            self._evaluation = None
        device = self.accelerator.device

        def gathered(parts: list[torch.Tensor]) -> torch.Tensor:
            """Every rank's rows, in rank order; ranks may hold different numbers."""
            return all_gather_variable(torch.cat(parts or [torch.empty(0)]).to(device))[0].cpu()

        columns = [gathered([r.columns[k] for r in rows]) for k in range(len(self.layout.columns._fields))]
        sides = (
            2 if self.layout.paired else 1
        )  # a paired batch's rows: the chosen completions, then the rejected
        stats = TokenStats.cat(
            [
                TokenStats(
                    *(gathered([r.policy.stats[k].tensor_split(sides)[side] for r in rows]) for k in range(4))
                )
                for side in range(sides)
            ]
        )
        metrics = eval_metrics(
            Scores.from_columns(self.layout.paired, columns, stats),
            beta=self.beta,
            cost=self.aot.aot_cost,
            label_smoothing=self.aot.aot_label_smoothing,
        )
        aux = [r.policy.aux_loss.float().reshape(1).to(device) for r in rows if r.policy.aux_loss is not None]
        if aux:  # the mean router loss of the evaluation batches, as TRL logs it
            metrics["aux_loss"] = gathered([a.detach() for a in aux]).mean().item()
        output.metrics.update({f"{metric_key_prefix}_{key}": value for key, value in metrics.items()})
        return output

    def prediction_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, None, None]:
        """One evaluation batch: its rows kept for the whole-set metrics, its own (local) loss returned."""
        if self._evaluation is None:
            raise RuntimeError("AOT trainers predict inside evaluation_loop only (evaluate() or predict())")
        with torch.no_grad(), self.compute_loss_context_manager():
            rows = self.forward_rows(model, compat.prepare_inputs(self, inputs))
            loss = self.loss_fn(*self.layout.loss_inputs(rows.columns)).detach()
        self._evaluation.append(cpu_rows(self.layout, rows, self._real_rows(len(rows.columns[0]))))
        return loss, None, None

    def _real_rows(self, count: int) -> int:
        """How many of this rank's ``count`` rows are evaluation rows rather than accelerate's padding.

        On several ranks accelerate completes the last batch of each rank with rows from the
        start of the set; ``gather_for_metrics`` keeps the first ``remainder`` rows of the
        rank-ordered concatenation of that batch. The same rule here counts each row once.
        """
        remainder = compat.last_batch_rows(self.accelerator)
        if remainder is None:
            return count
        return min(max(remainder - self.accelerator.process_index * count, 0), count)

    def score_batch(self, rows: list[dict[str, Any]]) -> Rows:
        """The log-probs of tokenized ``rows`` (as this trainer's datasets hold them) under the policy and
        the reference, without gradients: what ``aot-cli report`` scores."""
        with torch.no_grad():
            return self.forward_rows(self.model, compat.prepare_inputs(self, self.data_collator(rows)))

    # -- log-probs --------------------------------------------------------------------------------

    def forward_rows(
        self, model: torch.nn.Module, inputs: dict[str, Any], reference: Reference | None = None
    ) -> Rows:
        """The batch's rows; the reference log-probs are ``reference``, else the batch's precomputed
        columns, else computed."""
        policy = self._completions(model, inputs, policy=True)
        reference = reference or self.layout.precomputed(inputs)
        if reference is None:
            reference_model = (
                self.ref_model if self.ref_model is not None else model
            )  # TRL disables the adapter
            outputs = self.compute_ref_log_probs(reference_model, inputs)
            reference = outputs if self.layout.paired else outputs[:1]
        return self.layout.rows(policy, tuple(reference), inputs)

    def compute_ref_log_probs(self, model: torch.nn.Module, inputs: dict[str, Any]) -> tuple[Any, Any]:
        """TRL's reference pass (also what ``precompute_ref_log_probs`` calls) without the logits:
        under no_grad, through the reference model, or the adapter-disabled base for LoRA/QLoRA."""
        adapter = contextlib.nullcontext()
        if self.ref_model is None and is_peft_model(self.model):
            adapter = compat.reference_adapter(self.accelerator.unwrap_model(self.model))
        gradient_checkpointing = compat.without_gradient_checkpointing(
            self.model, self.args.gradient_checkpointing_kwargs
        )
        with torch.no_grad(), gradient_checkpointing, adapter:
            return self.layout.reference_outputs(self._completions(model, inputs, policy=False).logps)

    def _completions(self, model: torch.nn.Module, inputs: dict[str, Any], *, policy: bool) -> Completions:
        """One forward of ``model`` over the batch (packed: ``_tokens``): the completion log-probs and, for
        the policy, TRL's token statistics and (a Mixture-of-Experts model) the router loss TRL adds."""
        unwrapped = self.accelerator.unwrap_model(model, keep_torch_compile=False)
        aux_loss = policy and self.aux_loss_enabled
        chunked = self._chunked_model(unwrapped, aux_loss)
        tokens = self._tokens(unwrapped, inputs, full_logits_aux=aux_loss and isinstance(chunked, str))
        if isinstance(chunked, str):
            return self._full_logits(model, unwrapped, tokens, policy=policy, aux_loss=aux_loss)
        logps = functools.partial(
            sequence_logps,
            self._compiled(chunked),
            chunk_size=self.aot.aot_logits_chunk_size,
            stats=policy,
            aux_loss=aux_loss,
        )
        wrapper = model._orig_mod if is_compiled_module(model) else model  # compiled: ``_compiled``
        if unwrapped is wrapper and not self.is_fsdp_enabled:
            return logps(tokens)
        # Through the wrapper's forward (DDP, DeepSpeed; FSDP2 shards in place, so ``unwrapped`` is
        # ``model``): its hooks must see the backbone's forward, to gather parameters and arm the
        # gradient reduction.
        return compat.forward_through_wrapper(wrapper, unwrapped, logps, tokens=tokens)

    def _full_logits(
        self,
        model: torch.nn.Module,
        unwrapped: torch.nn.Module,
        tokens: Tokens,
        *,
        policy: bool,
        aux_loss: bool,
    ) -> Completions:
        """The model's own forward, [tokens, vocab] logits included (``_chunked_model`` says why)."""
        extra = {"output_router_logits": True} if aux_loss else {}
        out = model(**tokens.model_inputs(), **extra)
        per_token = compat.selective_log_softmax(out.logits[:, :-1], tokens.input_ids[:, 1:])
        logps = per_row(tokens, per_token[tokens.predicts])[0]
        stats = TokenStats.from_logits(out.logits, tokens) if policy else None
        aux = out.aux_loss if aux_loss else None
        if aux_loss and tokens.position_ids is not None:  # the model's own loss counts the rows' filler
            aux = router_aux_loss(unwrapped)(out.router_logits, tokens.real)
        return Completions(logps, stats, aux)

    def _tokens(self, model: torch.nn.Module, inputs: dict[str, Any], *, full_logits_aux: bool) -> Tokens:
        """The batch packed (``aot_padding_free``), or padded with the reason logged once."""
        tensors = (inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"])
        if not self.aot.aot_padding_free:
            return packing.padded(*tensors)
        reason = packing.packing_problem(model)
        if reason is None and full_logits_aux and router_aux_loss(model) is None:
            reason = f"{type(model).__name__}'s router loss comes from its own forward, which counts filler"
        if reason is not None:
            self._log_once(f"AOT batches are padded, not packed (aot_padding_free): {reason}")
            return packing.padded(*tensors)
        return packing.layout(*tensors, packing.attention_of(model), packing.RowCost.of(model.config))

    def _compiled(self, chunked: ChunkedModel) -> ChunkedModel:
        """With ``torch_compile``, the backbone the log-probs run compiled once (as the Trainer compiles
        the model, whose forward the chunked log-probs bypass)."""
        if not self.args.torch_compile:
            return chunked
        backbone = self._compiled_backbones.get(chunked.backbone)
        if backbone is None:
            backbone = torch.compile(
                chunked.backbone, backend=self.args.torch_compile_backend, mode=self.args.torch_compile_mode
            )
            self._compiled_backbones[chunked.backbone] = backbone
        return dataclasses.replace(chunked, backbone=backbone)

    def _log_once(self, message: str) -> None:
        if message not in self._logged_fallbacks:
            self._logged_fallbacks.add(message)
            LOG.warning(message)

    def _chunked_model(self, model: torch.nn.Module, aux_loss: bool = False) -> ChunkedModel | str:
        """The backbone and head to compute log-probs without the logits, or why the full logits are used."""
        if self.aot.aot_logits_chunk_size == 0:
            reason: ChunkedModel | str = "aot_logits_chunk_size is 0"
        elif self.is_fsdp_enabled and not self.accelerator.is_fsdp2:
            reason = "FSDP1 (fsdp_version: 1) flattens the LM head into its shards: use fsdp_version: 2"
        else:
            reason = chunked_head(model, gather=compat.gathered_lm_head)
            if aux_loss and not isinstance(reason, str) and reason.router_aux is None:
                reason = f"{type(model).__name__}'s router auxiliary loss is computed only by its own forward"
        if isinstance(reason, str):
            self._log_once(f"AOT log-probs use the full [tokens, vocab] logits: {reason}")
        return reason


class AOTPairedTrainer(AOTTrainer, compat.dpo_trainer()):
    """``rl: aot``: the policy's chosen-vs-rejected log-ratios must dominate the reference's."""

    tag_names: ClassVar[list[str]] = ["axolotl", "aot"]
    layout: ClassVar[Layout] = PairedRows()


class AOTUnpairedTrainer(AOTTrainer, compat.kto_trainer()):
    """``rl: aot_unpaired``: positive rewards must dominate negative rewards; no KL pass, n != m exact."""

    tag_names: ClassVar[list[str]] = ["axolotl", "aot"]
    layout: ClassVar[Layout] = UnpairedRows()

    def __init__(self, model: Any = None, ref_model: Any = None, *, args: Any = None, **kwargs: Any) -> None:
        sets = {"train_dataset": "the training set", "eval_dataset": "the evaluation set"}
        for key, name in sets.items():  # labels written as "true"/"false" or 0/1 read as booleans
            if isinstance(kwargs.get(key), Dataset):
                kwargs[key] = with_bool_labels(kwargs[key], name)
        super().__init__(model, ref_model, args=args, **kwargs)
        for key, name in sets.items():
            dataset = getattr(self, key)
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
