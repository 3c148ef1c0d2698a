"""Completions sampled from a causal LM, and their log-probs under a model, teacher-forced.

Sampling is Hugging Face's ``generate`` (the model's cache, left-padded batches) from the model's
full distribution at the given temperature: the checkpoint's ``generation_config.json`` (top-k,
top-p, penalties, suppressed tokens, ...) is set aside for the call, and the library's own defaults
that truncate (top-k 50) are switched off, since the KL estimate and the reward distribution are of
the model itself. Prompts are batched in a fixed order with a fixed
seed per batch, so two models sampled on the same prompts draw with the same random numbers: a
model compared with itself draws the same completions.

The log-probs of the sampled tokens come from one teacher-forced pass per model over the same
rows (not from generation's cached logits), so that the log-ratio of a model to itself is
exactly 0. At a temperature T the logits of both models are divided by T: the KL estimated is the
one between the two distributions the samples are drawn from (docs/evaluating.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

# A model's sampling distribution as it is: no truncation or penalty from transformers' defaults
# (the checkpoint's own generation_config is set aside: ``_plain_generation_config``).
FULL_DISTRIBUTION = {
    "top_k": 0,
    "top_p": 1.0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "min_new_tokens": 0,
}
LOGITS_PER_PASS = 2**26  # vocabulary logits of one teacher-forced chunk (256 MiB in float32)


@dataclass(frozen=True)
class SamplingSettings:
    """How completions are drawn: ``samples`` per prompt, ``batch_size`` prompts per ``generate``."""

    samples: int = 4
    max_new_tokens: int = 128
    temperature: float = 1.0
    seed: int = 0
    batch_size: int = 8

    def __post_init__(self) -> None:
        for name in ("samples", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be above 0, got {self.temperature}")


@dataclass
class Samples:
    """``per_prompt`` completions for each prompt, prompt-major (sample i is of prompt i // per_prompt).

    ``tokens[i]``: the generated ids, the end token included where the sample ended with one;
    ``texts[i]``: their decoded text without special tokens; ``ended[i]``: whether it ended before
    ``max_new_tokens``.
    """

    per_prompt: int
    prompt_ids: list[list[int]]
    tokens: list[list[int]]
    texts: list[str]
    ended: list[bool]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.tokens], dtype=np.int64)

    def prompt_of(self, sample: int) -> int:
        return sample // self.per_prompt


def end_token_ids(model: object, tokenizer: object) -> list[int]:
    """The ids that end a completion: the model's generation_config eos ids and the tokenizer's."""
    config = getattr(model, "generation_config", None)
    ids = getattr(config, "eos_token_id", None)
    ends = list(ids) if isinstance(ids, list | tuple) else [] if ids is None else [ids]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ends:
        ends.append(tokenizer.eos_token_id)
    if not ends:
        raise ValueError(
            "the tokenizer has no eos_token and the model names no eos_token_id: nothing ends a sample"
        )
    return ends


def _batches(prompt_ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Prompt indices in batches of similar length (less padding), in a fixed order."""
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _left_padded(
    rows: Sequence[Sequence[int]], pad: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            ids[index, width - len(row) :] = torch.tensor(row)
            mask[index, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


@contextlib.contextmanager
def _plain_generation_config(model: torch.nn.Module) -> Iterator[None]:
    """The model's ``generation_config`` replaced, for the duration, by one that keeps only its token
    ids: a None argument to ``generate`` would be filled from the saved one."""
    from transformers import GenerationConfig

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT: the model
    saved = inner.generation_config
    keep = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    inner.generation_config = GenerationConfig(**{k: getattr(saved, k, None) for k in keep})
    try:
        yield
    finally:
        inner.generation_config = saved


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    tokenizer: object,
    prompt_ids: Sequence[Sequence[int]],
    settings: SamplingSettings,
    *,
    on_batch: Callable[[int], None] | None = None,
) -> Samples:
    """``settings.samples`` completions of ``model`` for each prompt (token ids), seeded per batch.

    ``on_batch(prompts)`` is told how many prompts each finished batch held.
    """
    if not prompt_ids or any(len(ids) == 0 for ids in prompt_ids):
        raise ValueError("every prompt needs at least one token")
    device = _device(model)
    ends = end_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ends[0]
    k = settings.samples
    tokens: list[list[int]] = [[] for _ in range(len(prompt_ids) * k)]
    ended = [False] * len(tokens)
    was_training = model.training
    model.eval()
    for number, batch in enumerate(_batches(prompt_ids, settings.batch_size)):
        ids, mask = _left_padded([prompt_ids[i] for i in batch], pad, device)
        rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
        with rng, _plain_generation_config(model):
            torch.manual_seed(settings.seed + number)
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                use_cache=True,  # a trainer may have turned the config's off (gradient checkpointing)
                temperature=settings.temperature,
                max_new_tokens=settings.max_new_tokens,
                num_return_sequences=k,
                pad_token_id=pad,
                eos_token_id=ends,
                **FULL_DISTRIBUTION,
            )
        generated = out[:, ids.shape[1] :].tolist()
        for row, new in enumerate(generated):
            target = batch[row // k] * k + row % k
            stop = next((i for i, token in enumerate(new) if token in ends), None)
            tokens[target] = new if stop is None else new[: stop + 1]
            ended[target] = stop is not None
        if on_batch is not None:
            on_batch(len(batch))
    model.train(was_training)
    texts = [
        tokenizer.decode(t[:-1] if done else t, skip_special_tokens=True)
        for t, done in zip(tokens, ended, strict=True)
    ]
    return Samples(k, [list(p) for p in prompt_ids], tokens, texts, ended)


@torch.no_grad()
def completion_logps(model: torch.nn.Module, samples: Samples, settings: SamplingSettings) -> np.ndarray:
    """Summed log-probs of every sample's tokens under ``model`` at ``settings.temperature`` (float64).

    Teacher-forced, in the batches ``sample`` drew them in, prompt left-padded and completion
    right-padded, with position ids that skip the padding; the vocabulary logits of at most
    ``LOGITS_PER_PASS`` are alive at once.
    """
    device = _device(model)
    k, out = samples.per_prompt, np.zeros(len(samples.tokens), dtype=np.float64)
    vocabulary = model.config.get_text_config().vocab_size
    was_training = model.training
    model.eval()
    for batch in _batches(samples.prompt_ids, settings.batch_size):
        rows = [i * k + j for i in batch for j in range(k)]
        width = max(len(samples.tokens[r]) for r in rows)
        step = max(
            1, LOGITS_PER_PASS // (vocabulary * (width + max(len(samples.prompt_ids[i]) for i in batch)))
        )
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            out[chunk] = _logps(model, samples, chunk, settings.temperature, device)
    model.train(was_training)
    return out


def _logps(
    model: torch.nn.Module, samples: Samples, rows: list[int], temperature: float, device: torch.device
) -> np.ndarray:
    prompts = [samples.prompt_ids[samples.prompt_of(r)] for r in rows]
    ids, mask = _left_padded(prompts, 0, device)
    width = max(len(samples.tokens[r]) for r in rows)  # every sample has a token at least
    completion = torch.zeros((len(rows), width), dtype=torch.long)
    completion_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, r in enumerate(rows):
        completion[index, : len(samples.tokens[r])] = torch.tensor(samples.tokens[r], dtype=torch.long)
        completion_mask[index, : len(samples.tokens[r])] = 1
    completion, completion_mask = completion.to(device), completion_mask.to(device)
    input_ids = torch.cat([ids, completion], dim=1)
    attention = torch.cat([mask, completion_mask], dim=1)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions).logits
    logits = logits[:, ids.shape[1] - 1 : -1]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature  # bf16: float32
    token_logps = torch.log_softmax(logits, dim=-1).gather(-1, completion.unsqueeze(-1)).squeeze(-1)
    return (token_logps.double() * completion_mask).sum(dim=1).cpu().numpy()
