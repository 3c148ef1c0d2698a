"""Resuming from a checkpoint lands on the uninterrupted run's weights, through the real entry point.

Each case trains once uninterrupted with checkpoints, then resumes another run from one of
them; the two final weights must agree to 1e-6. Small datasets (24 rows, 3 steps an epoch)
put the resumed checkpoints in the second epoch, mid-epoch unless said otherwise.
"""

from __future__ import annotations

import shutil

import pytest
import yaml
from axolotl_runs import (
    LORA,
    final_weights,
    log_history,
    logged_steps,
    make_config,
    max_difference,
    small_dataset,
    train,
    train_until,
    weight_change,
    with_dataset,
)

pytestmark = pytest.mark.training

RESUME_TOLERANCE = 1e-6


def resume(config, checkpoint, tmp_path):
    """``config`` resumed from ``checkpoint`` into a fresh output directory; the run and its final weights."""
    cfg = yaml.safe_load(config.read_text())
    cfg.update(resume_from_checkpoint=str(checkpoint), output_dir=str(tmp_path / "resumed"))
    resumed = tmp_path / "resumed.yml"
    resumed.write_text(yaml.safe_dump(cfg))
    done = train(resumed)
    assert done.returncode == 0, done.stderr[-4000:]
    return done, final_weights(tmp_path / "resumed")


@pytest.mark.parametrize(
    ("mode", "changes", "checkpoint"),
    [
        # paired, local scope, full fine-tune, SGD: resumed at the start of the second epoch
        ("paired", {"aot_sort_scope": "local", "micro_batch_size": 8, "optimizer": "sgd"}, 3),
        # paired, step scope over 2 accumulated micro-batches, LoRA: resumed mid-epoch
        (
            "paired",
            {"aot_sort_scope": "step", "micro_batch_size": 4, "gradient_accumulation_steps": 2, **LORA},
            4,
        ),
        # unpaired (label-mixing sampler), step scope over 2 accumulated micro-batches: mid-epoch
        (
            "unpaired",
            {"aot_sort_scope": "step", "micro_batch_size": 4, "gradient_accumulation_steps": 2},
            4,
        ),
    ],
    ids=["paired-local-epoch-boundary", "paired-step-accumulation-lora", "unpaired-step-accumulation"],
)
def test_resume_equals_the_uninterrupted_run(tmp_path, tiny_model, mode, changes, checkpoint):
    config = make_config(tmp_path, mode, tiny_model, max_steps=6, save_steps=checkpoint, **changes)
    with_dataset(config, small_dataset(tmp_path, mode, 24))
    done = train(config)
    assert done.returncode == 0, done.stderr[-4000:]
    uninterrupted = final_weights(tmp_path / "out")
    assert weight_change(uninterrupted, tiny_model) > 0
    if changes["aot_sort_scope"] == "step":  # every sort holds the step's micro-batches, as one
        sort_size = changes["micro_batch_size"] * changes["gradient_accumulation_steps"]
        logs = [entry for entry in log_history(tmp_path / "out") if "loss" in entry]
        assert [entry["aot/sort_size"] for entry in logs] == [sort_size] * 6
    resumed, weights = resume(config, tmp_path / f"out/checkpoint-{checkpoint}", tmp_path)
    assert logged_steps(resumed) == 6 - checkpoint
    difference = max_difference(uninterrupted, weights)
    print(f"max |resumed - uninterrupted| ({mode}, {changes.get('aot_sort_scope')}): {difference:.3g}")
    assert difference <= RESUME_TOLERANCE


def test_unpaired_run_killed_between_saves_resumes_onto_the_uninterrupted_weights(tmp_path, tiny_model):
    """rl: aot_unpaired (its own label-mixing sampler), world scope, AdamW: SIGKILL after the
    step-5 checkpoint (second epoch, two micro-batches in), before the step-10 one; then the
    same command with auto_resume_from_checkpoints continues from checkpoint-5, also past a
    half-written checkpoint-9 (what a kill during a save leaves: trainer_state.json truncated)."""
    data = small_dataset(tmp_path, "unpaired", 24)
    reference = tmp_path / "reference"
    reference.mkdir()
    config = make_config(reference, "unpaired", tiny_model, max_steps=10, save_steps=5, micro_batch_size=8)
    done = train(with_dataset(config, data))
    assert done.returncode == 0, done.stderr[-4000:]
    uninterrupted = final_weights(reference / "out")

    killed = tmp_path / "killed"
    killed.mkdir()
    config = make_config(
        killed, "unpaired", tiny_model, max_steps=10, save_steps=5, micro_batch_size=8,
        auto_resume_from_checkpoints=True,
    )  # fmt: skip
    with_dataset(config, data)
    train_until(config, killed / "out/checkpoint-5")
    assert not (killed / "out/checkpoint-10").exists()
    assert not (killed / "out/model.safetensors").exists()
    half_written = shutil.copytree(killed / "out/checkpoint-5", killed / "out/checkpoint-9")
    (half_written / "trainer_state.json").write_text('{"global_step": 9, "log_hist')
    done = train(config)
    assert done.returncode == 0, done.stderr[-4000:]
    output = " ".join((done.stdout + done.stderr).split())
    assert (
        f"auto-resume skips incomplete {half_written} and resumes from {killed / 'out/checkpoint-5'}"
        in output
    )
    assert logged_steps(done) == 5  # steps 6-10: it resumed from checkpoint-5
    difference = max_difference(uninterrupted, final_weights(killed / "out"))
    print(f"max |killed+resumed - uninterrupted| (unpaired, world): {difference:.3g}")
    assert difference <= RESUME_TOLERANCE
