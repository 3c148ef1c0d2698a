"""axolotl-aot: Alignment via Optimal Transport (arXiv:2406.05882) for Axolotl.

The loss math (``losses``), its quantile coupling (``quantiles``), dominance
statistics (``dominance``) and cross-rank sorting (``distributed``) are pure torch
and numpy; nothing here imports axolotl until the plugin is used.
"""

from axolotl_aot.dominance import DominanceStats, dominance_stats
from axolotl_aot.losses import COSTS, aot_paired_loss, aot_unpaired_loss

__all__ = ["COSTS", "DominanceStats", "aot_paired_loss", "aot_unpaired_loss", "dominance_stats"]
