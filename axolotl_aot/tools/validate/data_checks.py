"""The checks of a config's datasets: each ``type:`` of the mode's family, each local file present,
and its rows read and rendered by that type into what the mode trains.

The row checks are training's own (``integration.data_checks.source_findings``: the plugin runs
them when training loads the data), so validate and training say the same of the same file.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from axolotl_aot.integration.data_checks import dataset_entries, source_findings, type_findings
from axolotl_aot.integration.modes import Mode
from axolotl_aot.integration.records import is_local
from axolotl_aot.tools.validate.report import Report


def check_dataset_types(raw: dict[str, Any], mode: Mode, report: Report) -> None:
    """Each ``type:`` must be one of the mode's family (``data_checks.type_findings``, as training)."""
    for finding in type_findings(raw, mode):
        report.add(*finding)


def check_dataset_files(raw: dict[str, Any], mode: Mode, report: Report) -> None:
    """Each local file exists, and its rows read and render into what the mode trains
    (``data_checks.source_findings``, which training runs too)."""
    tokenizer = functools.cache(lambda: _tokenizer(raw))  # loaded once, on first need
    for section, index, dataset in dataset_entries(raw):
        key, source = f"{section}[{index}]", str(dataset.get("path", ""))
        if not is_local(source):
            report.add("info", f"{key}.path", f"{source}: a hub dataset, not checked (offline)")
        elif not Path(source).expanduser().exists():  # axolotl.cli.train: relative to the current directory
            report.add("error", f"{key}.path", report.missing(source))
        else:
            for finding in source_findings(raw, section, index, mode, tokenizer):
                report.add(*finding)


def _tokenizer(raw: dict[str, Any]) -> Any:
    """The model's tokenizer from a local folder, or why it is not available (a string)."""
    name = raw.get("tokenizer_config") or raw.get("base_model_config") or raw.get("base_model")
    if not isinstance(name, str) or not Path(name).expanduser().exists():
        return (
            f"the type needs the tokenizer of {name!r}, which is not a local folder (not downloaded offline)"
        )
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(Path(name).expanduser()), local_files_only=True)
    except (OSError, ValueError) as err:
        return f"the tokenizer of {name!r} does not load ({err})"
