"""axolotl-aot: Alignment via Optimal Transport (arXiv:2406.05882) for Axolotl.

Three parts: ``ot`` (the OT math: losses, quantile coupling, dominance statistics, the sort
across ranks; pure torch), ``integration`` (the axolotl plugin, trainers and everything they
use) and ``tools`` (what ``aot-cli`` runs). ``AOTPlugin`` (for ``plugins: [axolotl_aot.AOTPlugin]``)
is imported on first use, so the math does not pay for importing axolotl.
"""

from typing import Any

from axolotl_aot.ot.dominance import DominanceStats, dominance_stats
from axolotl_aot.ot.losses import COSTS, aot_paired_loss, aot_unpaired_loss

__all__ = [
    "COSTS",
    "PLUGIN",
    "AOTPlugin",
    "DominanceStats",
    "aot_paired_loss",
    "aot_unpaired_loss",
    "dominance_stats",
]

# What a config lists under `plugins:`; also the entry point axolotl >= 0.21 loads by itself (pyproject).
PLUGIN = "axolotl_aot.AOTPlugin"


def __getattr__(name: str) -> Any:
    if name == "AOTPlugin":
        from axolotl_aot.integration.plugin import AOTPlugin

        return AOTPlugin
    raise AttributeError(f"module 'axolotl_aot' has no attribute {name!r}")
