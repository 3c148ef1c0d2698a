"""``python hide_entry_point.py MODULE ARGS...``: run MODULE as ``python -m`` would, with this
distribution's ``axolotl.plugins`` entry point hidden, as if axolotl-aot were not installed.

The baseline of the test that a non-AOT config trains the same with and without the package.
"""

from __future__ import annotations

import importlib.metadata
import runpy
import sys

_entry_points = importlib.metadata.entry_points


def _without_aot(**params: str) -> importlib.metadata.EntryPoints:
    points = _entry_points(**params)
    if params.get("group") == "axolotl.plugins":
        return importlib.metadata.EntryPoints(p for p in points if not p.value.startswith("axolotl_aot"))
    return points


if __name__ == "__main__":
    importlib.metadata.entry_points = _without_aot  # before axolotl imports it
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
