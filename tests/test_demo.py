"""`make demo`, the whole product, learns: training through ``accelerate launch -m axolotl.cli.train``
improves the logged dominance of both modes, and held-out dominance ends far better than the
reference's. (This run is also the suite's only long training: the learning checks live here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from axolotl_runs import ROOT, check_logs
from safetensors.torch import load_file

# One stack: the newest one trains through the same hooks in the shorter end-to-end runs.
pytestmark = [pytest.mark.training, pytest.mark.one_stack]


def test_make_demo_pipeline_learns_on_held_out_data(tmp_path, tiny_model):
    out = tmp_path / "demo"
    done = subprocess.run(
        [
            "make",
            "demo",
            f"VENV={sys.prefix}",  # the venv running the suite: .venv or .venv-latest
            f"TINY_MODEL={tiny_model}",
            f"DEMO_OUT={out}",
            "PAIRED_STEPS=80",
            "UNPAIRED_STEPS=80",
        ],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in ("== 2.", "== 3.", "== 4.", "== 5. held-out report: rl: aot", "rl: aot_unpaired"):
        assert step in done.stdout
    assert done.stdout.count(": OK") == 2  # both configs validated
    for mode, rows in (("aot", 100), ("aot-unpaired", 100)):
        report = json.loads((out / f"report-{mode}/report.json").read_text())
        (run,) = report["runs"].values()
        last = run["checkpoints"][-1]
        assert last["step"] == 80 and (last["n_pos"], last["n_neg"]) == (rows, rows)
        reference = last["ref_logp_violation"]
        assert reference > 0.35, reference  # an untrained model: no dominance
        assert last["rewards"]["violation_fraction"] < 0.1, last["rewards"]
        assert last["logp_violation"] < reference - 0.25, (last["logp_violation"], reference)
        assert (out / f"report-{mode}/violation_trend.png").exists()
    for mode, folder in (("paired", "aot"), ("unpaired", "aot_unpaired")):
        check_learned(tiny_model, out / folder, mode)
    converted = [json.loads(line) for line in (out / "parity_unpaired_train.jsonl").read_text().splitlines()]
    assert len(converted) == 800 and sum(row["label"] for row in converted) == 400


def check_learned(model: Path, out: Path, mode: str) -> None:
    """Every step logged finite AOT metrics over a sort of 16, the weights moved, and the logged
    violation fraction fell by more than 0.1 between the first and the last 20 steps."""
    logs = check_logs(out, 80)
    before, after = load_file(model / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(entry["aot/sort_size"] == 16 for entry in logs)
    violation = [entry["aot/violation_fraction"] for entry in logs[1:]]  # step 1: policy == reference
    early, late = sum(violation[:20]) / 20, sum(violation[-20:]) / 20
    assert late < early - 0.1, (mode, early, late)
    if mode == "unpaired":
        assert all(entry["aot/one_sided"] == 0 for entry in logs)
