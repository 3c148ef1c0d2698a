"""The alignment benchmark's ground-truth reward on fixed strings, and a checkpoint trained on its
task judged by ``aot-cli report --generate`` with that reward: its samples beat its reference's. (The
sampled KL estimator the benchmark reports is the product's: tests/test_generation.py tests it
against the exact KL of known distributions.)"""

from __future__ import annotations

import json
import sys

import pytest
from axolotl_runs import ROOT, train
from typer.testing import CliRunner

from axolotl_aot_cli.app import app

sys.path.insert(0, str(ROOT / "benchmarks"))

import alignment
from alignment_task import prompts, reward


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("good kind warm joy good kind.", 1.0),
        ("bad sad cold ugly bad sad.", -1.0),
        ("tree door blue cup tree door.", 0.0),
        ("good bad tree good joy ugly.", 1 / 6),
        ("good good good good good good good good.", 1.0),  # longer: the balance, not the count
        ("good.", 1 / 6),  # one positive word is not a full reward
        ("good joy", 2 / 6),  # the full stop is optional
        ("good xyz good good good good.", 4 / 6),  # a word outside the vocabulary counts as negative
        ("good, good good good good good.", 4 / 6),  # so does a misspelt one
        ("", 0.0),
    ],
)
def test_reward(text: str, expected: float) -> None:
    assert reward("Note 001:", text) == pytest.approx(expected)


STEPS = 8  # of 4 pairs x 8 accumulation, at beta 0.3: the benchmark's quick plan


@pytest.mark.training
def test_a_checkpoint_trained_on_the_task_writes_better_than_its_reference(tmp_path):
    """The benchmark's reference (the tiny model taught the task's language), its preference pairs
    drawn from the reference's own samples, rl: aot trained through axolotl: on held-out prompts the
    generation report finds the trained model's samples rewarded above the reference's by the task's
    reward function, its reward distribution dominating, at a small positive KL."""
    base = alignment.supervised_base(tmp_path, seed=0, steps=150)
    data = alignment.preference_data(tmp_path, base, seed=0, steps=STEPS)
    config = alignment.config(alignment.Run("aot", 0.3, "step"), base, data, tmp_path / "aot", 0, STEPS)
    done = train(config)
    assert done.returncode == 0, done.stderr[-3000:]
    held_out = tmp_path / "prompts.jsonl"
    held_out.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts(range(1000, 1032))))
    args = ["--data", data["files"]["paired"], "--max-samples", "32", "--generate", "--prompts", held_out]
    args += ["--reward-fn", f"{ROOT}/benchmarks/alignment_task.py:reward", "--max-new-tokens", "48"]
    out = tmp_path / "report"
    args = ["report", tmp_path / "aot/out", "--config", config, "--out", out, "--json", *args]
    result = CliRunner().invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output
    generation = json.loads(result.output)["runs"]["config"]["generation"]
    assert generation["samples"] == 32 * 4
    assert generation["reward_mean"] > generation["reference_reward_mean"] + 0.15
    assert generation["win_rate"] > 0.65
    assert generation["violation_fraction"] < 0.2
    assert 0 < generation["kl_per_token"] < 0.5
    for name in ("config_out_samples.jsonl", "config_reference.jsonl"):
        rows = [json.loads(line) for line in (out / "samples" / name).open()]
        assert [r["reward"] for r in rows] == [reward(r["prompt"], r["completion"]) for r in rows]
