"""The merged-grid quantile coupling shared by the loss and the dominance statistics."""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from axolotl_aot.ot.quantiles import quantile_coupling


@given(n=st.integers(1, 40), m=st.integers(1, 40))
def test_coupling_matches_the_definition_with_exact_fractions(n, m):
    i, j, weight = quantile_coupling(n, m)
    grid = sorted({Fraction(k, n) for k in range(n + 1)} | {Fraction(k, m) for k in range(m + 1)})
    assert len(weight) == len(grid) - 1 <= n + m - 1
    for k, (lo, hi) in enumerate(pairwise(grid)):
        mid = (lo + hi) / 2
        assert (i[k], j[k]) == (int(mid * n), int(mid * m))
        assert weight[k] == pytest.approx(float(hi - lo), rel=1e-15)
    assert weight.sum() == pytest.approx(1.0, rel=1e-12)
    # Each atom keeps its mass 1/n (resp. 1/m): the coupling is a transport plan.
    np.testing.assert_allclose(np.bincount(i, weight, minlength=n), np.full(n, 1 / n), rtol=1e-12)
    np.testing.assert_allclose(np.bincount(j, weight, minlength=m), np.full(m, 1 / m), rtol=1e-12)


def test_equal_sizes_give_the_identity_coupling_and_results_are_read_only():
    i, j, weight = quantile_coupling(4, 4)
    assert i.tolist() == j.tolist() == [0, 1, 2, 3]
    assert weight.tolist() == [0.25] * 4
    with pytest.raises(ValueError, match="read-only"):
        i[0] = 3


def test_empty_side_is_rejected():
    with pytest.raises(ValueError, match="n >= 1 and m >= 1, got n=0, m=3"):
        quantile_coupling(0, 3)
