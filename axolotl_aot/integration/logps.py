"""Summed completion log-probs through the LM head in token chunks, without the vocabulary logits.

A causal LM's forward returns logits of every position over the whole vocabulary
([batch, tokens, vocab]); a log-softmax in float32 doubles that. AOT needs one number per
sequence, log pi(y|x) summed over the completion tokens, so this module takes the backbone's
last hidden states instead, keeps only the completion positions (the hidden state at t
predicts token t+1) and runs the LM head on ``chunk_size`` of them at a time. Its autograd
Function keeps the hidden states and one log-sum-exp per token; backward recomputes each
chunk's logits, so no [tokens, vocab] tensor lives in forward or backward.

The same chunks give, at no extra pass, what TRL logs from the logits (``TokenStats``:
entropy, mean logit, argmax accuracy per row), and a Mixture-of-Experts backbone's router
logits give the model's own load-balancing loss (``ChunkedModel.router_aux``), so the
policy pass needs nothing of the model's full forward.

``chunked_head`` says whether a model's head can be reproduced exactly (a plain linear map,
optionally followed by a known logit scale or soft-capping) and otherwise why not, so the
caller can fall back to the full logits. The batch comes as ``packing.Tokens``: padded rows, or
sequences packed without padding, whose completion tokens are summed per sequence alike. Pure
torch: nothing here knows of trainers.

Sharded heads (docs/logps.md, "Sharded engines"): under FSDP2 the weight is a DTensor, gathered
once per pass with ``full_tensor()`` (its backward reduce-scatters the gradient onto the shard);
under DeepSpeed ZeRO-3 it is partitioned outside its module's forward, which the chunked matmul
bypasses, so the caller passes a ``gather`` context (TRL's ``maybe_gather_lm_head_ctx``) that the
autograd Function enters in forward and again in backward.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from axolotl_aot.integration.packing import Tokens

# model_type -> (config attribute, how it maps the logits), read from each family's
# ``ForCausalLM.forward``: these apply ``lm_head`` and then at most this one transformation.
PLAIN_HEADS = frozenset(
    {
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi", "phi3",
        "gemma", "gemma2", "gemma3_text", "cohere", "cohere2", "granite", "granitemoe", "olmo",
        "olmo2", "smollm3", "starcoder2",
    }
)  # fmt: skip
ParamGather = Callable[..., contextlib.AbstractContextManager]  # (*params) -> context: full params inside
LOGIT_SCALE_ATTR = "logit_scale"  # Cohere: logits * logit_scale
LOGIT_DIVISOR_ATTR = "logits_scaling"  # Granite: logits / logits_scaling
SOFTCAP_ATTR = "final_logit_softcapping"  # Gemma 2/3: cap * tanh(logits / cap)


@dataclass(frozen=True)
class LMHead:
    """What a head does to a hidden state h: z = scale * (W h + b), then cap * tanh(z / cap)."""

    weight: torch.Tensor  # (vocab, hidden)
    bias: torch.Tensor | None = None
    scale: float = 1.0
    softcap: float | None = None
    gather: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext  # ZeRO-3: full params


class TokenStats(NamedTuple):
    """Per-row sums over the completion tokens of what TRL's DPO/KTO trainers log from the logits.

    Sums, not means, so that rows of any batches, ranks or a whole evaluation set add up.
    """

    tokens: torch.Tensor  # completion tokens
    entropy: torch.Tensor  # entropy of the next-token distribution
    logits: torch.Tensor  # each token's mean logit over the vocabulary
    correct: torch.Tensor  # tokens whose most likely next token is the target

    @classmethod
    def from_logits(cls, logits: torch.Tensor, tokens: Tokens) -> TokenStats:
        """From a model's full (rows, tokens, vocab) logits of ``tokens``, as TRL computes them."""
        z = logits[:, :-1][tokens.predicts].detach().float()
        logp = torch.log_softmax(z, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)
        correct = (z.argmax(-1) == tokens.targets()).to(z.dtype)
        return cls(*per_row(tokens, torch.ones_like(entropy), entropy, z.mean(-1), correct))

    @classmethod
    def cat(cls, parts: list[TokenStats]) -> TokenStats:
        """The rows of ``parts``, concatenated in order."""
        return cls(*(torch.cat(column) for column in zip(*parts, strict=True)))

    def select(self, rows: torch.Tensor | slice) -> TokenStats:
        return TokenStats(*(column[rows] for column in self))


class Completions(NamedTuple):
    """What one forward gives for a batch: log pi(completion | prompt) per row, and on request
    the token statistics and a Mixture-of-Experts model's router load-balancing loss."""

    logps: torch.Tensor
    stats: TokenStats | None = None
    aux_loss: torch.Tensor | None = None


RouterAux = Callable[[Any, torch.Tensor], torch.Tensor]  # (router logits, attention mask) -> loss


@dataclass(frozen=True)
class ChunkedModel:
    """A causal LM split into the backbone (hidden states) and the head it ends with."""

    backbone: nn.Module
    head_module: nn.Linear
    scale: float
    softcap: float | None
    router_aux: RouterAux | None = None  # the model's own load-balancing loss of its router logits
    gather: ParamGather | None = None  # makes partitioned (ZeRO-3) head parameters whole

    def head(self) -> LMHead:
        """The head's current parameters (read at each call: optimizers update them in place), an
        FSDP2 DTensor weight gathered whole."""
        weight, bias = self.head_module.weight, self.head_module.bias
        if isinstance(weight, DTensor):
            weight = weight.full_tensor()
            bias = bias.full_tensor() if isinstance(bias, DTensor) else bias
        if self.gather is None:
            return LMHead(weight, bias, self.scale, self.softcap)
        gather = self.gather
        return LMHead(weight, bias, self.scale, self.softcap, lambda: gather(weight, bias))


def chunked_head(model: nn.Module, gather: ParamGather | None = None) -> ChunkedModel | str:
    """``model`` (a ``*ForCausalLM``, optionally inside a PEFT model) as backbone + exact head,
    or the reason it cannot be reproduced without the model's own forward. ``gather`` makes
    DeepSpeed ZeRO-3's partitioned head parameters whole; without it such a head is refused."""
    if hasattr(model, "get_base_model"):  # PEFT: LoRA layers are injected in place, so the
        model = model.get_base_model()  # inner model's backbone still runs the adapters
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in PLAIN_HEADS:
        return f"model type {model_type!r} is not one whose LM head this module reproduces"
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if type(head) is not nn.Linear:  # a LoRA layer, a quantised or wrapped head
        return f"the LM head is a {type(head).__name__}, not a plain torch.nn.Linear"
    if gather is None and any(hasattr(p, "ds_id") for p in head.parameters()):
        return "the LM head's weight is partitioned by DeepSpeed ZeRO-3 and no gather was given"
    try:
        backbone = model.get_decoder()
    except (AttributeError, NotImplementedError):
        backbone = None
    if not isinstance(backbone, nn.Module) or backbone is model:
        return f"{type(model).__name__} exposes no backbone through get_decoder()"
    scale = float(getattr(model, LOGIT_SCALE_ATTR, None) or getattr(config, LOGIT_SCALE_ATTR, None) or 1.0)
    divisor = getattr(config, LOGIT_DIVISOR_ATTR, None)
    if divisor is not None:
        scale /= float(divisor)
    softcap = getattr(config, SOFTCAP_ATTR, None)
    return ChunkedModel(backbone, head, scale, softcap, router_aux_loss(model), gather)


def router_aux_loss(model: nn.Module) -> RouterAux | None:
    """The load-balancing loss a Mixture-of-Experts ``*ForCausalLM`` adds in its own forward:
    its module's ``load_balancing_loss_func`` with its expert counts (Mixtral, Qwen2/3-MoE,
    OLMoE, ...), or None for a dense model or one whose forward computes it otherwise."""
    if hasattr(model, "get_base_model"):  # PEFT
        model = model.get_base_model()
    loss_fn = getattr(sys.modules.get(type(model).__module__), "load_balancing_loss_func", None)
    experts, top_k = getattr(model, "num_experts", None), getattr(model, "num_experts_per_tok", None)
    if loss_fn is None or experts is None or top_k is None:
        return None
    return lambda router_logits, attention_mask: loss_fn(router_logits, experts, top_k, attention_mask)


def sequence_logps(
    model: ChunkedModel,
    tokens: Tokens,
    chunk_size: int,
    *,
    stats: bool = False,
    aux_loss: bool = False,
) -> Completions:
    """(sequences,) log pi(completion | prompt), summed over the completion tokens of ``tokens``
    (padded or packed); with ``stats`` the rows' ``TokenStats``, with ``aux_loss`` the router loss
    over the real tokens (needs ``model.router_aux``)."""
    extra = {"output_router_logits": True} if aux_loss else {}
    out = model.backbone(**tokens.model_inputs(), **extra)
    logps, token_stats = gathered_logps(out.last_hidden_state, tokens, model.head(), chunk_size, stats=stats)
    aux = model.router_aux(out.router_logits, tokens.real) if aux_loss else None
    return Completions(logps, token_stats, aux)


def gathered_logps(
    hidden: torch.Tensor, tokens: Tokens, head: LMHead, chunk_size: int, *, stats: bool = False
) -> tuple[torch.Tensor, TokenStats | None]:
    """Per-sequence sums of the completion tokens' log-probs from last hidden states (rows, T, h),
    and with ``stats`` their ``TokenStats``."""
    per_token, *extras = _chunked(hidden[:, :-1][tokens.predicts], tokens.targets(), head, chunk_size, stats)
    if not stats:
        return per_row(tokens, per_token)[0], None
    logps, *sums = per_row(tokens, per_token, torch.ones_like(extras[0]), *extras)
    return logps, TokenStats(*sums)


def per_row(tokens: Tokens, *values: torch.Tensor) -> list[torch.Tensor]:
    """Each (completion tokens,) ``values`` summed per sequence of the batch."""
    owner = tokens.completion_owner()
    return [x.new_zeros(tokens.sequences).index_add(0, owner, x) for x in values]


def token_logps(hidden: torch.Tensor, targets: torch.Tensor, head: LMHead, chunk_size: int) -> torch.Tensor:
    """(tokens,) log-softmax (float32 or wider) of each target, ``chunk_size`` tokens at a time."""
    return _chunked(hidden, targets, head, chunk_size, False)[0]


def _chunked(
    hidden: torch.Tensor, targets: torch.Tensor, head: LMHead, chunk_size: int, stats: bool
) -> tuple[torch.Tensor, ...]:
    """``_ChunkedLogps`` applied inside the head's gather, so autograd records the whole weight."""
    with head.gather():
        return _ChunkedLogps.apply(
            hidden, head.weight, head.bias, targets, head.scale, head.softcap, chunk_size, stats, head.gather
        )


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The matmul dtype the full model would use: autocast's if on, else the operands' promotion."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(hidden.dtype, weight.dtype)


def _logits(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, scale: float, dtype: torch.dtype
) -> torch.Tensor:
    """Scaled logits of a chunk in at least float32, the matmul in ``dtype`` as the model's head does it."""
    bias = None if bias is None else bias.to(dtype)
    logits = nn.functional.linear(hidden.to(dtype), weight.to(dtype), bias)
    logits = logits.to(_accumulation_dtype(dtype))
    return logits * scale if scale != 1.0 else logits


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision models (a float32 logsumexp), float64 for float64 ones (gradcheck)."""
    return torch.promote_types(dtype, torch.float32)


class _ChunkedLogps(torch.autograd.Function):
    """log_softmax(cap(scale * (W h + b)))[target] per token; saves inputs and one float per token.

    With ``stats`` it also returns, without gradient, each token's entropy, mean logit and
    whether its argmax is the target (empty tensors otherwise). Forward and backward read the
    weight inside ``gather()``: the caller applies it inside, so that autograd records the whole
    weight's shape, and backward enters it again (ZeRO-3 re-partitions the weight in between).
    """

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        scale: float,
        softcap: float | None,
        chunk_size: int,
        stats: bool,
        gather: Callable[[], contextlib.AbstractContextManager],
    ) -> tuple[torch.Tensor, ...]:
        dtype = _compute_dtype(hidden, weight)
        out = torch.empty(len(hidden), dtype=_accumulation_dtype(dtype), device=hidden.device)
        lse = torch.empty_like(out)
        entropy, mean_logit, correct = (torch.empty_like(out[: len(out) if stats else 0]) for _ in range(3))
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, len(hidden), chunk_size):
                part = slice(start, start + chunk_size)
                z = _logits(hidden[part], weight, bias, scale, dtype)
                if softcap is not None:
                    z = softcap * torch.tanh(z / softcap)
                lse[part] = torch.logsumexp(z, dim=-1)
                out[part] = z.gather(1, targets[part].unsqueeze(1)).squeeze(1) - lse[part]
                if stats:  # H = lse - sum softmax(z) * z
                    entropy[part] = lse[part] - (torch.exp(z - lse[part].unsqueeze(1)) * z).sum(-1)
                    mean_logit[part] = z.mean(-1)
                    correct[part] = (z.argmax(-1) == targets[part]).to(out.dtype)
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.settings = (scale, softcap, chunk_size, dtype)
        ctx.gather = gather
        ctx.mark_non_differentiable(entropy, mean_logit, correct)
        return out, entropy, mean_logit, correct

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor, *_: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        with ctx.gather():
            return (*_ChunkedLogps._backward(ctx, grad_out), None)

    @staticmethod
    def _backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        scale, softcap, chunk_size, dtype = ctx.settings
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.zeros_like(hidden) if need_h else None
        accumulate = _accumulation_dtype(dtype)
        grad_w = torch.zeros(weight.shape, dtype=accumulate, device=weight.device) if need_w else None
        grad_b = torch.zeros(len(weight), dtype=accumulate, device=weight.device) if need_b else None
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, len(hidden), chunk_size):
                part = slice(start, start + chunk_size)
                z = _logits(hidden[part], weight, bias, scale, dtype)
                if softcap is not None:
                    capped = torch.tanh(z / softcap)
                    z, dcap = softcap * capped, 1 - capped.square()
                # d logp / dz = onehot(target) - softmax(z), times the incoming gradient
                grad_z = torch.exp(z - lse[part].unsqueeze(1)).neg_()
                grad_z.scatter_add_(1, targets[part].unsqueeze(1), torch.ones_like(grad_z[:, :1]))
                grad_z.mul_(grad_out[part].unsqueeze(1))
                if softcap is not None:
                    grad_z.mul_(dcap)
                if scale != 1.0:
                    grad_z.mul_(scale)
                if need_h:
                    grad_h[part] = (grad_z.to(dtype) @ weight.to(dtype)).to(hidden.dtype)
                if need_w:
                    grad_w.addmm_(grad_z.t(), hidden[part].to(accumulate))
                if need_b:
                    grad_b.add_(grad_z.sum(0))
        return (
            grad_h,
            None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_b is None else grad_b.to(bias.dtype),
            None,
            None,
            None,
            None,
            None,
        )
