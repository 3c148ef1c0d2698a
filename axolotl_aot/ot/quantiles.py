"""The monotone (quantile) coupling of two uniform empirical measures.

For samples u (n atoms) and v (m atoms) the quantile functions Q_u and Q_v are
step functions with breakpoints k/n and l/m. On each interval of the merged
grid both are constant, so any integral over t in (0, 1) of a function of
(Q_u(t), Q_v(t)) is a finite weighted sum over the merged grid (docs/method.md,
"Unequal sizes: the merged grid"). For a convex cost this coupling is the optimal transport plan,
which is why the AOT loss and the dominance statistics both build on it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np


class QuantileCoupling(NamedTuple):
    """Interval k of the merged grid couples sorted atom ``i[k]`` of u with
    sorted atom ``j[k]`` of v and has length ``weight[k]``; weights sum to 1."""

    i: np.ndarray
    j: np.ndarray
    weight: np.ndarray


@lru_cache(maxsize=256)
def quantile_coupling(n: int, m: int) -> QuantileCoupling:
    """Merged-grid coupling of n and m sorted atoms (at most n + m - 1 intervals).

    Exact integer arithmetic on the common denominator n*m: the breakpoints are
    k*m and l*n, an interval's midpoint times n is (a + b) / (2m), so the atom
    indices floor(mid * n) and floor(mid * m) never suffer rounding.
    """
    if n < 1 or m < 1:
        raise ValueError(f"quantile_coupling needs n >= 1 and m >= 1, got n={n}, m={m}")
    grid = np.union1d(np.arange(n + 1, dtype=np.int64) * m, np.arange(m + 1, dtype=np.int64) * n)
    lo, hi = grid[:-1], grid[1:]
    coupling = QuantileCoupling(
        i=(lo + hi) // (2 * m),
        j=(lo + hi) // (2 * n),
        weight=(hi - lo) / (n * m),
    )
    for array in coupling:
        array.flags.writeable = False  # shared through the cache
    return coupling
