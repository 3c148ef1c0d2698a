"""`make demo`, the whole product, learns: held-out dominance far better than the reference's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from axolotl_runs import ROOT

pytestmark = pytest.mark.training


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
    converted = [json.loads(line) for line in (out / "parity_unpaired_train.jsonl").read_text().splitlines()]
    assert len(converted) == 800 and sum(row["label"] for row in converted) == 400
