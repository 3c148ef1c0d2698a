"""Everything wrong with an AOT config, found before a GPU is rented: ``aot-cli validate``.

The YAML goes through axolotl's own pipeline with the plugin registered (``tools.config``), so
schema errors are axolotl's. On top come what axolotl lets through silently and what only
AOT knows about (``config_checks``): every axolotl key that rl: aot/aot_unpaired refuses or
ignores (all of them, where training stops at the first: ``settings.setting_problems``,
docs/settings.md), unknown (misspelt) keys, a local ``base_model`` that does not exist, the
plugin missing or not importable, an unusual beta, a sort too small for the paper's batch-size
finding; and for the data (``data_checks``) a dataset type of the wrong family for the mode, and
local dataset files that are missing (looked up as ``axolotl.cli.train`` does, from the current
directory) or that the configured type does not render into what the mode trains.
"""

from __future__ import annotations

import os
from pathlib import Path

from axolotl_aot.tools.validate.config_checks import (
    axolotl_validate,
    check_base_model,
    check_beta,
    check_evaluation,
    check_mode,
    check_padding_free,
    check_plugin,
    check_settings,
    check_sort_size,
    check_unknown_keys,
    read_yaml,
)
from axolotl_aot.tools.validate.data_checks import check_dataset_files, check_dataset_types
from axolotl_aot.tools.validate.report import Problem, Report, Severity

__all__ = ["Problem", "Report", "Severity", "check_evaluation", "validate_file"]


def validate_file(path: str | Path, *, n_gpu: int | None = None, as_gpu: bool = False) -> Report:
    """Check one axolotl YAML; ``n_gpu`` (default: ``WORLD_SIZE`` or 1) sizes the world sort."""
    report = Report(Path(path))
    raw = read_yaml(report)
    if raw is None:
        return report
    n_gpu = n_gpu or int(os.environ.get("WORLD_SIZE", "1"))
    mode = check_mode(raw, report)
    if mode is None or not check_plugin(raw, report):
        return report
    cfg = axolotl_validate(raw, report, as_gpu=as_gpu, n_gpu=n_gpu)
    check_settings(raw, mode, report)
    check_unknown_keys(raw, report)
    check_base_model(raw, report)
    check_dataset_types(raw, mode, report)
    if cfg is not None:
        check_beta(cfg, report)
        check_sort_size(cfg, mode, n_gpu, report)
        check_evaluation(cfg, report)
        check_padding_free(cfg, report)
    check_dataset_files(raw, mode, report)
    return report
