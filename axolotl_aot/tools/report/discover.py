"""What a report covers, checked before anything heavy is imported: runs, checkpoints, paths.

A run has a name (its plot files carry it), checkpoint folders or globs, the config it was
trained with and optionally its evaluation rows. A training's output folder given as a
checkpoint stands for its ``checkpoint-N`` folders, in step order, then its final model.
``check_inputs`` looks at every path before axolotl, TRL or transformers are imported, so a
mistyped path fails in a second instead of after a model has loaded.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

from axolotl_aot.integration.checkpoints import checkpoint_step, is_checkpoint, saved_checkpoints
from axolotl_aot.integration.records import SUFFIX_TYPES, file_suffix, iter_records

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class RunSpec:
    """One run to report: its checkpoints (folders or globs), the config it was trained with, and
    the evaluation rows (None: the config's ``test_datasets`` or ``val_set_size``)."""

    name: str
    config: Path
    patterns: list[str] = field(default_factory=list)
    data: Path | None = None


def check_run_name(name: str) -> str:
    """A run name is used in file names: letters, digits, '.', '_' and '-'."""
    if not RUN_NAME.fullmatch(name):
        raise ValueError(
            f"run name {name!r}: use letters, digits, '.', '_' and '-' (it names the plot files)"
        )
    return name


def prepare_out(out: Path) -> None:
    """Create the output folder before anything is scored, so that a bad ``--out`` fails first."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"--out {out}: cannot create the folder ({err.strerror}); pass a writable folder"
        ) from None


def resolve_checkpoints(patterns: list[str]) -> list[Path]:
    """Expand globs; each match must be a model or adapter folder, or a training's output folder
    holding ``checkpoint-N`` folders (with or without its final model): those, then the final
    model. Ordered by training step, the folders without a step (final models) last."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not matches:
            raise ValueError(f"{pattern}: no checkpoint matches")
        for match in map(Path, matches):
            if not match.is_dir():
                raise ValueError(f"{match}: not a checkpoint folder (no such folder)")
            # A checkpoint's own subfolders are not checkpoints of a run.
            saved = [] if checkpoint_step(match) is not None else saved_checkpoints(match)
            if not saved and not is_checkpoint(match):
                raise ValueError(
                    f"{match} is not a checkpoint: it has neither config.json nor adapter_config.json"
                )
            for checkpoint in saved:
                if not is_checkpoint(checkpoint):
                    raise ValueError(
                        f"{checkpoint} is not a checkpoint: it has neither config.json nor "
                        f"adapter_config.json; pass the other folders of {match} by name"
                    )
            found += saved + ([match] if is_checkpoint(match) else [])
    return sorted(dict.fromkeys(found), key=lambda p: (checkpoint_step(p) is None, checkpoint_step(p) or 0))


def check_data(path: Path, what: str = "evaluation") -> None:
    """An evaluation (or prompts) file or folder that exists, of a type the report reads, with rows."""
    if not path.exists():
        raise ValueError(f"{path}: no such {what} file or folder")
    if path.is_file() and file_suffix(path) not in SUFFIX_TYPES:
        raise ValueError(f"{path}: unsupported file type; use {', '.join(SUFFIX_TYPES)}")
    if next(iter_records(path), None) is None:
        set_name = "the evaluation set" if what == "evaluation" else f"the {what} file"
        raise ValueError(f"{set_name} is empty: {path} has no rows")


def check_inputs(specs: list[RunSpec], out: Path) -> list[list[Path]]:
    """Every path of the report, checked before anything heavy is imported or scored: ``out``
    (created), then per run its name, checkpoints, config and evaluation rows. Returns each
    run's checkpoints (``resolve_checkpoints``)."""
    if not specs:
        raise ValueError("no run to report")
    prepare_out(out)
    if len({spec.name for spec in specs}) < len(specs):
        raise ValueError("two runs have the same name")
    checkpoints = []
    for spec in specs:
        check_run_name(spec.name)
        checkpoints.append(resolve_checkpoints(spec.patterns))
        if not Path(spec.config).is_file():
            raise ValueError(f"{spec.config}: no such config file (the YAML the run was trained with)")
        if spec.data is not None:
            check_data(Path(spec.data))
    return checkpoints
