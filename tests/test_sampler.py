"""Every micro-batch of rl: aot_unpaired holds both labels, in the requested mix."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_aot.integration.sampler import LabelMixingSampler


def chunks(sampler: LabelMixingSampler) -> list[list[int]]:
    order = list(sampler)
    assert len(order) == len(sampler)
    return [order[i : i + sampler.batch_size] for i in range(0, len(order), sampler.batch_size)]


@settings(max_examples=60, deadline=None)
@given(n_pos=st.integers(1, 60), n_neg=st.integers(1, 60), batch=st.integers(2, 9), seed=st.integers(0, 99))
def test_every_chunk_has_both_labels_and_every_sample_is_seen(n_pos, n_neg, batch, seed):
    labels = [True] * n_pos + [False] * n_neg
    sampler = LabelMixingSampler(labels, batch_size=batch, seed=seed)
    seen = set()
    for chunk in chunks(sampler):
        assert len(chunk) == batch
        assert any(labels[i] for i in chunk) and not all(labels[i] for i in chunk)
        seen.update(chunk)
    assert seen == set(range(n_pos + n_neg))


def test_proportional_mix_follows_the_dataset_and_equal_mix_is_one_to_one():
    labels = [True] * 300 + [False] * 100
    proportional = chunks(LabelMixingSampler(labels, batch_size=8))
    share = sum(labels[i] for chunk in proportional for i in chunk) / sum(map(len, proportional))
    assert share == pytest.approx(0.75, abs=0.01)
    equal = chunks(LabelMixingSampler(labels, batch_size=8, ratio="equal"))
    assert all(sum(labels[i] for i in chunk) == 4 for chunk in equal)


def test_epochs_reshuffle_and_seeds_reproduce():
    labels = [True, False] * 20
    sampler = LabelMixingSampler(labels, batch_size=4, seed=3)
    first, second = list(sampler), list(sampler)
    assert first != second
    assert list(LabelMixingSampler(labels, batch_size=4, seed=3)) == first


@pytest.mark.parametrize(
    ("labels", "batch", "message"),
    [
        ([True, True], 2, "has 2 with label=True and 0 with label=False: add label=False"),
        ([False], 2, "has 0 with label=True and 1 with label=False: add label=True"),
        ([True, False], 1, "batch_size must be >= 2 to hold both labels; got 1"),
    ],
)
def test_impossible_mixes_fail_with_the_fix(labels, batch, message):
    with pytest.raises(ValueError, match=message):
        LabelMixingSampler(labels, batch_size=batch)


def test_order_is_a_function_of_seed_and_epoch_only():
    """A resumed Trainer builds a fresh sampler and calls ``set_epoch``: it must see the
    uninterrupted run's order of that epoch, whatever the sampler iterated before."""
    labels = [True] * 15 + [False] * 9
    uninterrupted = LabelMixingSampler(labels, batch_size=4, seed=7)
    epochs = [list(uninterrupted) for _ in range(3)]
    for epoch in (2, 1, 0):
        resumed = LabelMixingSampler(labels, batch_size=4, seed=7)
        resumed.set_epoch(epoch)
        assert list(resumed) == epochs[epoch]
    assert epochs[0] != epochs[1] != epochs[2]
