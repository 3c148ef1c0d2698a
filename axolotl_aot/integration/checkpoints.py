"""Which checkpoint a resumed run starts from, refusing ones a killed run left half-written.

The Trainer writes a checkpoint's files one after the other and ``trainer_state.json`` last,
so a run killed while saving leaves a folder without it, or with it truncated. axolotl's
``auto_resume_from_checkpoints`` takes the highest-numbered folder regardless and the
Trainer then fails on the JSON (or resumes without optimizer state). ``resume_checkpoint``
picks the last complete checkpoint instead, and an explicitly named incomplete one is an
error that names the complete one to use. Nothing is deleted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

LOG = logging.getLogger(__name__)
WEIGHTS = (
    "model.safetensors",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
)


def incomplete(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from, or None when it is complete."""
    state = checkpoint / "trainer_state.json"
    try:
        json.loads(state.read_text())["global_step"]
    except FileNotFoundError:
        return f"{checkpoint} has no trainer_state.json (the run stopped while saving it)"
    except (ValueError, KeyError, TypeError):
        return f"{state} is not a complete trainer state (the run stopped while writing it)"
    if not any((checkpoint / name).exists() for name in WEIGHTS) and not sharded_weights(checkpoint):
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
    checkpoints = _checkpoints(Path(output_dir))
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


def _checkpoints(folder: Path) -> list[Path]:
    """``checkpoint-N`` folders by step, as axolotl's auto-resume orders them."""
    found = (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit())
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def _fix(folder: Path) -> str:
    complete = [p for p in _checkpoints(folder) if incomplete(p) is None]
    if complete:
        return f"Resume from the last complete checkpoint: resume_from_checkpoint: {complete[-1]}"
    return "No complete checkpoint exists: move the incomplete one away and train from the start."
