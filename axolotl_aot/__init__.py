"""axolotl-aot: Alignment via Optimal Transport (arXiv:2406.05882) for Axolotl.

The loss math (``losses``), its quantile coupling (``quantiles``), dominance
statistics (``dominance``) and cross-rank sorting (``distributed``) are pure torch
and numpy. ``AOTPlugin`` (for ``plugins: [axolotl_aot.AOTPlugin]``) is imported on
first use, so the math does not pay for importing axolotl.
"""

from typing import Any

from axolotl_aot.dominance import DominanceStats, dominance_stats
from axolotl_aot.losses import COSTS, aot_paired_loss, aot_unpaired_loss

__all__ = ["COSTS", "AOTPlugin", "DominanceStats", "aot_paired_loss", "aot_unpaired_loss", "dominance_stats"]


def __getattr__(name: str) -> Any:
    if name == "AOTPlugin":
        from axolotl_aot.plugin import AOTPlugin

        return AOTPlugin
    raise AttributeError(f"module 'axolotl_aot' has no attribute {name!r}")
