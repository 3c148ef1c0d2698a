"""``aot-cli smoke``: a user's config run for a few steps on a tiny model of the same family.

``prepare`` writes the smoke config (tiny model, first data rows, CPU substitutes of
GPU-only settings), ``run`` launches it as the real run would, ``probe`` (a plugin listed
only in the smoke config) records what really happened, ``environment`` the versions.
"""

from axolotl_aot.tools.smoke.rows import Row
from axolotl_aot.tools.smoke.run import run_smoke

__all__ = ["Row", "run_smoke"]
