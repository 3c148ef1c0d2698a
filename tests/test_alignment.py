"""The alignment benchmark's ground-truth reward on fixed strings, and its sampled KL estimator
against the exact KL of two known categorical distributions."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from alignment_task import kl_per_token, reward, sample, win_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("good kind warm joy good kind.", 1.0),
        ("bad sad cold ugly bad sad.", -1.0),
        ("tree door blue cup tree door.", 0.0),
        ("good bad tree good joy ugly.", 1 / 6),
        ("good good good good good good good good.", 1.0),  # longer: the balance, not the count
        ("good.", 1 / 6),  # one positive word is not a full reward
        ("good joy", 2 / 6),  # the full stop is optional
        ("good xyz good good good good.", 4 / 6),  # a word outside the vocabulary counts as negative
        ("good, good good good good good.", 4 / 6),  # so does a misspelt one
        ("", 0.0),
    ],
)
def test_reward(text: str, expected: float) -> None:
    assert reward(text) == pytest.approx(expected)


class Categorical:
    """A "model" whose next-token distribution is the same at every position: softmax(logits)."""

    def __init__(self, logits: list[float]) -> None:
        self.logits = torch.tensor(logits, dtype=torch.float64)

    def __call__(self, ids: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.logits.expand(*ids.shape, -1))


def exact_kl(p: Categorical, q: Categorical) -> float:
    log_p, log_q = torch.log_softmax(p.logits, 0), torch.log_softmax(q.logits, 0)
    return float((log_p.exp() * (log_p - log_q)).sum())


P, Q = Categorical([2.0, 0.5, 0.0, 0.0]), Categorical([0.0, 1.0, 0.5, 1.0])


def estimate(policy: Categorical, reference: Categorical, eos: int | None) -> tuple[float, list]:
    samples = sample(
        policy,
        reference,
        [[0], [1, 2], [3]],  # prompts of different lengths: batched separately
        per_prompt=1000,
        max_new_tokens=20,
        eos_token_id=eos,
        generator=torch.Generator().manual_seed(0),
    )
    return kl_per_token(samples), samples


@pytest.mark.parametrize("eos", [None, 3])
def test_kl_estimate_converges_to_exact_kl(eos: int | None) -> None:
    """Tokens are i.i.d. from p, so the summed log-ratio over all sampled tokens divided by their
    number converges to KL(p || q), with or without an end token that stops a row early."""
    kl, samples = estimate(P, Q, eos)
    assert len(samples) == 3000
    assert kl == pytest.approx(exact_kl(P, Q), abs=0.02)  # about 6 standard errors
    lengths = {s.generated for s in samples}
    assert lengths == {20} if eos is None else min(lengths) >= 1 and max(lengths) <= 20


def test_kl_estimate_sees_the_direction() -> None:
    """KL(q || p) sampled from q is the other, different divergence."""
    kl, _ = estimate(Q, P, None)
    assert kl == pytest.approx(exact_kl(Q, P), abs=0.02)
    assert abs(exact_kl(Q, P) - exact_kl(P, Q)) > 0.1


def test_kl_of_a_model_to_itself_is_zero() -> None:
    kl, samples = estimate(P, P, 3)
    assert kl == 0.0
    assert all(s.tokens[-1:] != [3] for s in samples)  # the end token is not part of the text


def test_win_rate_counts_ties_half() -> None:
    assert win_rate({0: [1.0, 0.0], 1: [0.5]}, {0: [0.0], 1: [1.0]}) == pytest.approx((1 + 0.5 + 0) / 3)
