"""A generation task with a known reward, for the alignment benchmark.

The language: completions of space-separated words from a small vocabulary of positive,
neutral and negative words, ending with a full stop. The ground-truth reward of a completion
is the balance of its words, (positives - negatives) / max(words, LENGTH), in [-1, 1]; a word
outside the vocabulary counts as negative, so that disfluent text is penalised. One token cannot
solve it: every word of the completion counts.

Sampling, the sampled KL and the win rate are the product's (``axolotl_aot.tools.generation``, what
``aot-cli report --generate`` runs); ``reward`` is a reward function as that report takes one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

WORDS = {
    1: ("good", "kind", "warm", "joy"),
    0: ("tree", "door", "blue", "cup"),
    -1: ("bad", "sad", "cold", "ugly"),
}
VALUE = {word: value for value, words in WORDS.items() for word in words}
LENGTH = 6  # words in a supervised completion; fewer words are scored as if padded with neutral ones
TEMPLATES = ("Write about item {}.", "Note {}:", "Describe thing {}.", "Say something on {}.")


def reward(prompt: str, completion: str) -> float:
    """The balance of positive over negative words in ``completion``; unknown words count as negative.

    A reward function as ``aot-cli report --generate --reward-fn`` calls one; the prompt does not count.
    """
    words = completion.strip().removesuffix(".").split()
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
