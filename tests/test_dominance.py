"""Dominance statistics on hand-computed cases and against brute force."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_aot.ot.dominance import QUANTILE_LEVELS, dominance_stats


def test_dominance_holds_equal_sizes():
    s = dominance_stats([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert (s.n_pos, s.n_neg) == (3, 3)
    assert s.violation_fraction == 0.0
    assert s.violation_area == 0.0
    assert s.ks_statistic == pytest.approx(1 / 3)
    assert s.win_rate == pytest.approx(7 / 9)  # 1 beats 0, ties 1; 2 beats 0, 1, ties 2; 3 beats all
    assert s.quantile_margins == pytest.approx((1.0,) * 9)
    assert s.min_quantile_margin == 1.0
    assert (s.mean_pos, s.mean_neg) == (2.0, 1.0)


def test_unequal_sizes_two_against_one():
    # Q_pos = 0 on (0, 1/2], 2 on (1/2, 1]; Q_neg = 1 everywhere.
    s = dominance_stats(np.array([2.0, 0.0]), torch.tensor([1.0]))
    assert s.violation_fraction == 0.5
    assert s.violation_area == 0.5
    assert s.ks_statistic == 0.5
    assert s.win_rate == 0.5
    assert s.quantile_margins == (-1.0,) * 5 + (1.0,) * 4  # Q(t) is left-continuous: Q_pos(0.5) = 0
    assert s.min_quantile_margin == -1.0


def test_unequal_sizes_three_against_two():
    # Merged grid 0, 1/3, 1/2, 2/3, 1: (0,1/3] 0 vs .5 violated; (1/3,1/2] 1 vs .5;
    # (1/2,2/3] 1 vs 1.5 violated; (2/3,1] 2 vs 1.5.
    s = dominance_stats([0.0, 1.0, 2.0], [0.5, 1.5])
    assert s.violation_fraction == pytest.approx(1 / 3 + 1 / 6)
    assert s.violation_area == pytest.approx(0.5 / 3 + 0.5 / 6)
    assert s.ks_statistic == pytest.approx(1 / 3)
    assert s.win_rate == pytest.approx(3 / 6)
    # ceil(t*3)-th of pos and ceil(t*2)-th of neg at t = .1 .. .9
    assert s.quantile_margins == pytest.approx((-0.5, -0.5, -0.5, 0.5, 0.5, -0.5, 0.5, 0.5, 0.5))


def test_ties_are_not_violations():
    s = dominance_stats([1.0, 1.0], [1.0, 1.0, 1.0])
    assert s.violation_fraction == 0.0
    assert s.violation_area == 0.0
    assert s.ks_statistic == 0.0
    assert s.win_rate == 0.5
    assert s.min_quantile_margin == 0.0


def test_stats_are_frozen_and_inputs_may_be_any_sequence():
    from_list = dominance_stats([3, 1, 2], (0.5, 4.0))
    assert from_list == dominance_stats(torch.tensor([1.0, 2.0, 3.0]), np.array([4.0, 0.5]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        from_list.win_rate = 1.0  # type: ignore[misc]


def brute_quantile(x: np.ndarray, t: float) -> float:
    """inf{y : F(y) >= t}, straight from the definition."""
    return min(y for y in x if np.mean(x <= y) >= t - 1e-12)


@settings(max_examples=150, deadline=None)
@given(
    pos=st.lists(st.integers(-5, 5), min_size=1, max_size=12),
    neg=st.lists(st.integers(-5, 5), min_size=1, max_size=12),
)
def test_against_brute_force(pos, neg):
    u, v = np.array(pos, float), np.array(neg, float)
    n, m = len(u), len(v)
    s = dominance_stats(u, v)
    # Every merged-grid interval is a union of cells of width 1/(n m): evaluate Q at cell midpoints.
    cells = (np.arange(n * m) + 0.5) / (n * m)
    gap = np.array([brute_quantile(u, t) - brute_quantile(v, t) for t in cells])
    assert s.violation_fraction == pytest.approx(np.mean(gap < 0), abs=1e-12)
    assert s.violation_area == pytest.approx(np.mean(np.maximum(-gap, 0)), abs=1e-12)
    points = np.concatenate([u, v])
    assert s.ks_statistic == pytest.approx(
        max(abs(np.mean(u <= x) - np.mean(v <= x)) for x in points), abs=1e-12
    )
    assert s.win_rate == pytest.approx(np.mean([(x > y) + 0.5 * (x == y) for x in u for y in v]), abs=1e-12)
    expected = [brute_quantile(u, t) - brute_quantile(v, t) for t in QUANTILE_LEVELS]
    assert s.quantile_margins == pytest.approx(expected, abs=1e-12)
    assert s.min_quantile_margin == min(expected)


@pytest.mark.parametrize(
    ("pos", "neg", "message"),
    [
        ([], [1.0], "pos is empty"),
        ([1.0], np.zeros((2, 2)), r"neg must be 1-D; got shape \(2, 2\)"),
        ([1.0, float("nan")], [1.0], "pos has a non-finite value nan at index 1"),
        ([1.0], ["a"], "neg must be numbers"),
    ],
)
def test_bad_input(pos, neg, message):
    with pytest.raises(ValueError, match=message):
        dominance_stats(pos, neg)
