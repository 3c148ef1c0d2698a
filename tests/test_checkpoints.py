"""Choosing the checkpoint to resume from: half-written ones (a run killed while saving) are skipped
by auto-resume and refused by name, with the complete checkpoint to use instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axolotl_aot.integration import checkpoints
from axolotl_aot.integration.checkpoints import incomplete, resume_checkpoint


def checkpoint(out: Path, step: int, state: str | None = None, weights: bool = True) -> Path:
    """A checkpoint folder as the Trainer leaves it; ``state`` overrides trainer_state.json's text."""
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if weights:
        (folder / "model.safetensors").write_bytes(b"weights")
    if state != "missing":
        (folder / "trainer_state.json").write_text(
            state if state is not None else json.dumps({"global_step": step})
        )
    return folder


def test_auto_resume_takes_the_last_complete_checkpoint(tmp_path, monkeypatch):
    # The warning itself, not the log output: importing aot-cli elsewhere in this process raises
    # the level at which axolotl's logging filter lets records through.
    warnings: list[str] = []
    monkeypatch.setattr(checkpoints.LOG, "warning", lambda message, *args: warnings.append(message % args))
    complete = checkpoint(tmp_path, 10)
    checkpoint(tmp_path, 5)
    truncated = checkpoint(tmp_path, 20, state='{"global_step": 20, "log_hi')
    missing = checkpoint(tmp_path, 15, state="missing")
    assert resume_checkpoint(str(tmp_path), None, auto_resume=True) == str(complete)
    assert warnings == [f"auto-resume skips incomplete {missing}, {truncated} and resumes from {complete}"]


def test_without_auto_resume_or_checkpoints_nothing_is_resumed(tmp_path):
    checkpoint(tmp_path, 5)
    assert resume_checkpoint(str(tmp_path), None, auto_resume=False) is None
    assert resume_checkpoint(str(tmp_path / "empty"), None, auto_resume=True) is None


def test_a_named_incomplete_checkpoint_is_refused_naming_the_complete_one(tmp_path):
    complete = checkpoint(tmp_path, 5)
    broken = checkpoint(tmp_path, 10, state="")
    with pytest.raises(ValueError) as error:
        resume_checkpoint(str(tmp_path), str(broken), auto_resume=False)
    assert str(error.value) == (
        f"resume_from_checkpoint: {broken / 'trainer_state.json'} is not a complete trainer state (the run "
        "stopped while writing it). Resume from the last complete checkpoint: "
        f"resume_from_checkpoint: {complete}"
    )
    assert resume_checkpoint(str(tmp_path), str(complete), auto_resume=False) == str(complete)


def test_auto_resume_with_no_complete_checkpoint_says_to_start_over(tmp_path):
    checkpoint(tmp_path, 5, weights=False)
    with pytest.raises(
        ValueError, match=r"holds no model or adapter weights\. No complete checkpoint exists"
    ):
        resume_checkpoint(str(tmp_path), None, auto_resume=True)
    assert incomplete(checkpoint(tmp_path, 6)) is None
