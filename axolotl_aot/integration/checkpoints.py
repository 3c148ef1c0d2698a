"""Which checkpoint a resumed run starts from, refusing ones a killed run left half-written.

The Trainer writes a checkpoint's files one after the other and ``trainer_state.json`` last,
so a run killed while saving leaves a folder without it, or with it truncated. axolotl's
``auto_resume_from_checkpoints`` takes the highest-numbered folder regardless and the
Trainer then fails on the JSON (or resumes without optimizer state). ``resume_checkpoint``
picks the last complete checkpoint instead, and an explicitly named incomplete one is an
error that names the complete one to use. Nothing is deleted.

It is also the one place that knows how the Trainer names a step's folder (``checkpoint-N``) and
what makes a folder a model or adapter, for ``aot-cli report`` as for resuming.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from axolotl_aot.tools.saved_models import WEIGHT_FILES

LOG = logging.getLogger(__name__)
CHECKPOINT = re.compile(r"checkpoint-(\d+)")  # the Trainer's folder for step N (PREFIX_CHECKPOINT_DIR)


def checkpoint_step(path: Path) -> int | None:
    """N of a ``checkpoint-N`` folder; None for any other folder (e.g. a training's final model)."""
    match = CHECKPOINT.fullmatch(path.name)
    return int(match.group(1)) if match else None


def saved_checkpoints(folder: Path) -> list[Path]:
    """The ``checkpoint-N`` folders a training saved in its output ``folder``, by step."""
    found = (
        path for path in folder.glob("checkpoint-*") if path.is_dir() and checkpoint_step(path) is not None
    )
    return sorted(found, key=checkpoint_step)


def is_checkpoint(path: Path) -> bool:
    """A model folder (``config.json``) or an adapter folder (``adapter_config.json``)."""
    return (path / "config.json").exists() or (path / "adapter_config.json").exists()


def incomplete(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from, or None when it is complete."""
    state = checkpoint / "trainer_state.json"
    try:
        json.loads(state.read_text())["global_step"]
    except FileNotFoundError:
        return f"{checkpoint} has no trainer_state.json (the run stopped while saving it)"
    except (ValueError, KeyError, TypeError):
        return f"{state} is not a complete trainer state (the run stopped while writing it)"
    if not any((checkpoint / name).exists() for name in WEIGHT_FILES) and not sharded_weights(checkpoint):
        return f"{checkpoint} holds no model or adapter weights"
    return None


def sharded_weights(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` holds a sharded engine's complete weights: FSDP's ``SHARDED_STATE_DICT``
    (a torch.distributed.checkpoint folder, whose ``.metadata`` is written last) or DeepSpeed ZeRO's
    per-rank model states."""
    fsdp = any((folder / ".metadata").exists() for folder in checkpoint.glob("pytorch_model_fsdp_*"))
    return fsdp or any(checkpoint.glob("global_step*/*model_states.pt"))


def resume_checkpoint(output_dir: str, resume_from: str | None, auto_resume: bool) -> str | None:
    """The checkpoint to resume from (None: none, or axolotl's own choice stands).

    Raises ``ValueError`` when ``resume_from`` is incomplete, or when ``auto_resume`` finds
    checkpoints of which none is complete.
    """
    if resume_from:
        reason = incomplete(Path(resume_from))
        if reason:
            raise ValueError(f"resume_from_checkpoint: {reason}. {_fix(Path(resume_from).parent)}")
        return resume_from
    if not auto_resume:
        return None
    checkpoints = saved_checkpoints(Path(output_dir))
    for newer, checkpoint in enumerate(reversed(checkpoints)):
        if incomplete(checkpoint) is None:
            if newer:
                skipped = ", ".join(str(p) for p in checkpoints[-newer:])
                LOG.warning("auto-resume skips incomplete %s and resumes from %s", skipped, checkpoint)
            return str(checkpoint)
    if checkpoints:
        raise ValueError(
            f"auto_resume_from_checkpoints: {incomplete(checkpoints[-1])}. {_fix(Path(output_dir))}"
        )
    return None


def _fix(folder: Path) -> str:
    complete = [p for p in saved_checkpoints(folder) if incomplete(p) is None]
    if complete:
        return f"Resume from the last complete checkpoint: resume_from_checkpoint: {complete[-1]}"
    return "No complete checkpoint exists: move the incomplete one away and train from the start."
