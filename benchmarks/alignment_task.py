"""A generation task with a known reward, and the sampled estimates the alignment benchmark reports.

The language: completions of space-separated words from a small vocabulary of positive,
neutral and negative words, ending with a full stop. The ground-truth reward of a completion
is the balance of its words, (positives - negatives) / max(words, LENGTH), in [-1, 1]; a word
outside the vocabulary counts as negative, so that disfluent text is penalised. One token cannot
solve it: every word of the completion counts.

Sampling is at temperature 1 from the model itself (no top-k), so that the per-token log-ratio
log pi - log pi_ref averaged over sampled tokens estimates KL(pi || pi_ref) per token.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

WORDS = {
    1: ("good", "kind", "warm", "joy"),
    0: ("tree", "door", "blue", "cup"),
    -1: ("bad", "sad", "cold", "ugly"),
}
VALUE = {word: value for value, words in WORDS.items() for word in words}
LENGTH = 6  # words in a supervised completion; fewer words are scored as if padded with neutral ones
TEMPLATES = ("Write about item {}.", "Note {}:", "Describe thing {}.", "Say something on {}.")


def reward(text: str) -> float:
    """The balance of positive over negative words in ``text``; unknown words count as negative."""
    words = text.strip().removesuffix(".").split()
    return sum(VALUE.get(word, -1) for word in words) / max(len(words), LENGTH)


def prompts(numbers: Sequence[int]) -> list[str]:
    """One prompt per number, templates in turn (the reward does not depend on the prompt); numbers
    padded to three digits, so that prompts of one template have one length and sample in one batch."""
    return [TEMPLATES[i % len(TEMPLATES)].format(f"{number:03d}") for i, number in enumerate(numbers)]


def supervised_completion(rng: random.Random) -> str:
    """A fluent completion whose mood (the mix of positive, neutral and negative words) is drawn
    from a flat Dirichlet, so that a model trained on such text samples a wide spread of rewards."""
    mix = [rng.gammavariate(1.0, 1.0) for _ in WORDS]
    moods = rng.choices(list(WORDS), weights=mix, k=LENGTH)
    return " ".join(rng.choice(WORDS[mood]) for mood in moods) + "."


@dataclass
class Sample:
    """One sampled completion: its prompt, its tokens (without the end token), and the summed
    log pi - log pi_ref over the generated tokens (the end token included) and their number."""

    prompt: int
    tokens: list[int]
    log_ratio: float
    generated: int


@torch.no_grad()
def sample(
    policy: Any,
    reference: Any | None,
    prompt_ids: Sequence[Sequence[int]],
    *,
    per_prompt: int,
    max_new_tokens: int,
    eos_token_id: int | None,
    generator: torch.Generator,
) -> list[Sample]:
    """``per_prompt`` samples from ``policy`` for each prompt, with their log-ratios to ``reference``.

    Prompts of equal length are batched together, so no padding is needed: every row of a batch
    has the same length at every step. A row stops at ``eos_token_id`` or ``max_new_tokens``.
    ``policy`` and ``reference`` map input ids [batch, length] to an object with ``.logits``;
    without a ``reference`` (drawing data, not measuring KL) the log-ratios are 0.
    """
    by_length: dict[int, list[int]] = {}
    for index, ids in enumerate(prompt_ids):
        by_length.setdefault(len(ids), []).append(index)
    samples = []
    for indices in by_length.values():
        owners = [index for index in indices for _ in range(per_prompt)]
        ids = torch.tensor([list(prompt_ids[index]) for index in owners])
        alive = torch.ones(len(owners), dtype=torch.bool)
        log_ratio = torch.zeros(len(owners), dtype=torch.float64)
        generated = torch.zeros(len(owners), dtype=torch.long)
        start = ids.shape[1]
        for _ in range(max_new_tokens):
            log_p = torch.log_softmax(policy(ids).logits[:, -1].double(), dim=-1)
            token = torch.multinomial(log_p.exp(), 1, generator=generator)
            if reference is not None:
                log_q = torch.log_softmax(reference(ids).logits[:, -1].double(), dim=-1)
                step = (log_p.gather(1, token) - log_q.gather(1, token)).squeeze(1)
                log_ratio += torch.where(alive, step, 0.0)
            generated += alive
            ids = torch.cat([ids, token], dim=1)
            if eos_token_id is not None:
                alive &= token.squeeze(1) != eos_token_id
            if not alive.any():
                break
        for row, owner in enumerate(owners):
            tokens = ids[row, start : start + int(generated[row])].tolist()
            if eos_token_id is not None and tokens and tokens[-1] == eos_token_id:
                tokens = tokens[:-1]
            samples.append(Sample(owner, tokens, float(log_ratio[row]), int(generated[row])))
    return sorted(samples, key=lambda s: s.prompt)


def kl_per_token(samples: Sequence[Sample]) -> float:
    """Sampled KL(pi || pi_ref) per generated token: the summed log-ratios over the tokens sampled."""
    return sum(s.log_ratio for s in samples) / sum(s.generated for s in samples)


def win_rate(policy: dict[int, list[float]], reference: dict[int, list[float]]) -> float:
    """P(policy sample beats a reference sample of the same prompt) + half the ties, over all pairs."""
    wins = pairs = 0.0
    for prompt, ours in policy.items():
        for a in ours:
            for b in reference[prompt]:
                wins += (a > b) + 0.5 * (a == b)
                pairs += 1
    return wins / pairs
