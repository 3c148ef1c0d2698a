"""``aot-cli smoke`` on the example configs and on broken ones: real axolotl runs of 1-2 steps."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from axolotl_runs import FAST_STACK, ROOT, tiny_config
from typer.testing import CliRunner

from axolotl_aot.tools.smoke import run_smoke
from axolotl_aot_cli.app import app

AOT_CLI = Path(sys.executable).parent / "aot-cli"
GPU_ONLY = {
    "CUDA",
    "attention kernel requested",
    "mixed precision",
    "deepspeed launch",
    "flash-attn",
    "deepspeed",
}
CPU = not torch.cuda.is_available()


def by_name(rows: list) -> dict:
    return {row["name"] if isinstance(row, dict) else row.name: row for row in rows}


@pytest.mark.training
@pytest.mark.parametrize("mode", ["paired", "unpaired"])
def test_tiny_configs_every_row_ok(tmp_path, tiny_model, mode):
    # Two micro-batches a step: the loss shown is the logged one, not divided by the accumulation.
    config = tiny_config(tmp_path, mode, base_model=str(tiny_model), gradient_accumulation_steps=2)
    done = subprocess.run(
        [AOT_CLI, "smoke", str(config), "--json", "--keep", str(tmp_path / "smoke")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(done.stdout)
    names = [row["name"] for row in rows]
    assert len(names) == len(set(names)), "one entry per row"
    not_ok = {row["name"] for row in rows if row["status"] != "ok"}
    assert not_ok == ({"CUDA", "cross-rank gather"} if CPU else set()), rows
    rows = by_name(rows)
    # The kernel and the quantization the model really has: the smoke model reloaded independently.
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(
        tmp_path / "smoke/out/checkpoint-2", attn_implementation="sdpa"
    )
    assert rows["attention kernel"]["detail"].startswith(reloaded.config._attn_implementation)
    assert rows["4-bit layers"]["detail"] == "none requested"
    assert rows["padding-free batches"]["detail"] == "packed (sdpa separates the sequences of a row)"
    assert rows["optimizer step"]["detail"].startswith("2 steps")
    sort_size = 16  # micro_batch_size: pairs (paired) or sequences (unpaired) per sort
    log = json.loads((tmp_path / "smoke/out/checkpoint-2/trainer_state.json").read_text())["log_history"]
    assert [entry["aot/sort_size"] for entry in log if "aot/sort_size" in entry] == [sort_size] * 2
    logged = [entry["loss"] for entry in log if "loss" in entry]
    assert rows["loss finite"]["detail"] == f"4 micro-batches, last logged loss {logged[-1]:.4g}"
    assert logged[-1] == pytest.approx(math.log(2), abs=0.05)  # a random model: ln 2, not ln 2 / 2


def test_json_errors_are_objects_on_stdout(tmp_path):
    missing = str(tmp_path / "none.yml")
    cases = [([missing], 1, "none.yml"), ([missing, "--steps", "0"], 2, "--steps")]
    for args, code, text in cases:
        result = CliRunner().invoke(app, ["smoke", *args, "--json"])
        assert result.exit_code == code, result.output
        error = json.loads(result.stdout)
        assert error.keys() == {"error", "exit_code"} and error["exit_code"] == code
        assert text in error["error"]


@pytest.mark.training
# The example YAMLs' rows on a CPU, each on one stack (two per stack, which balances the stacks' time).
@pytest.mark.parametrize(
    "name", ["aot.yml", "aot_fsdp2.yml"] if FAST_STACK else ["aot_unpaired.yml", "aot_multigpu.yml"]
)
def test_gpu_examples_on_this_machine(tmp_path, monkeypatch, name):
    monkeypatch.chdir(ROOT)  # the example's deepspeed path is relative to the repository root
    rows = by_name(run_smoke(ROOT / "example_yamls" / name, steps=1, workdir=tmp_path))
    assert not [row for row in rows.values() if row.failed]
    cfg = yaml.safe_load((ROOT / "example_yamls" / name).read_text())
    if CPU:  # GPU-only settings are reported, never claimed
        expected = {"CUDA", "attention kernel requested", "mixed precision", "flash-attn"}
        expected |= {"deepspeed launch", "deepspeed"} if cfg.get("deepspeed") else set()
        expected |= {"fsdp launch"} if cfg.get("fsdp_version") else set()
        assert {n for n, row in rows.items() if row.status == "not run here"} >= expected
        assert all(rows[n].status != "ok" for n in expected)
        assert rows["attention kernel"].detail.startswith("sdpa")
        if cfg.get("deepspeed") or cfg.get("fsdp_version"):  # two CPU ranks: the gather really checked
            assert rows["cross-rank gather"].status == "ok"
            assert rows["cross-rank gather"].detail.endswith("over 2 ranks")
            launch = rows["deepspeed launch" if cfg.get("deepspeed") else "fsdp launch"].detail
            assert "ran as 2 CPU ranks of plain data parallelism" in launch
    smoke = yaml.safe_load((tmp_path / "smoke.yml").read_text())
    model = json.loads((Path(smoke["base_model"]) / "config.json").read_text())
    if cfg.get("load_in_4bit"):  # every linear layer of every decoder layer: q, k, v, o, gate, up, down
        quantized = 7 * model["num_hidden_layers"]
        assert rows["4-bit layers"].detail.startswith(f"{quantized} bitsandbytes Linear4bit layers quantized")
    else:
        assert rows["4-bit layers"].detail == "none requested"
    assert rows["gradient checkpointing"].detail == "on"
    assert rows["reference pass"].detail.endswith("from the adapter-disabled policy")


@pytest.mark.training
def test_dataset_columns_that_do_not_fit_the_type(tmp_path, tiny_model):
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "a"}) + "\n" for i in range(8)))
    dataset = {"path": str(data), "ds_type": "json", "split": "train", "type": "chatml.prompt_pairs"}
    config = tiny_config(tmp_path, base_model=str(tiny_model), datasets=[dataset])
    rows = by_name(run_smoke(config, workdir=tmp_path / "smoke"))
    detail = rows["data formatting"].detail
    assert rows["data formatting"].status == "failed"
    assert detail.startswith("axolotl-aot: datasets[0].type: ")  # the data checks' message (data_checks.py)
    assert "line 1 has no column 'prompt' that type 'chatml.prompt_pairs' reads" in detail
    assert "aot-cli convert-dataset" in detail
    assert rows["training"].status == "not run here"


@pytest.mark.training
def test_a_learning_rate_that_blows_up(tmp_path, tiny_model):
    config = tiny_config(tmp_path, base_model=str(tiny_model), learning_rate=1.0e30)
    rows = by_name(run_smoke(config, workdir=tmp_path / "smoke"))
    blown = [rows[n] for n in ("loss finite", "gradients finite and non-zero") if rows[n].failed]
    assert blown and all("lower learning_rate" in row.detail for row in blown), rows
    assert rows["optimizer step"].failed


def test_a_corrupt_deepspeed_json_fails_before_training(tmp_path, tiny_model):
    broken = tmp_path / "zero2.json"
    broken.write_text((ROOT / "example_yamls/deepspeed/zero2.json").read_text()[:-20])
    config = tiny_config(tmp_path, base_model=str(tiny_model), deepspeed=str(broken))
    result = CliRunner().invoke(app, ["smoke", str(config), "--json"])  # in-process: nothing launches
    assert result.exit_code == 1, result.output
    rows = by_name(json.loads(result.stdout))
    assert rows["deepspeed config"]["status"] == "failed"
    assert "it must be valid JSON" in rows["deepspeed config"]["detail"]
    assert rows["training"] == {
        "name": "training",
        "status": "not run here",
        "detail": "not started: a row above failed",
    }


def test_kernels_a_cpu_cannot_run_are_switched_off_and_reported(tmp_path, tiny_model):
    from axolotl_aot.tools.smoke.prepare import prepare

    kernels = {"liger_rms_norm": True, "liger_glu_activation": True, "liger_fused_linear_cross_entropy": True}
    plugins = ["axolotl_aot.AOTPlugin", "axolotl.integrations.liger.LigerPlugin"]
    config = tiny_config(tmp_path, base_model=str(tiny_model), plugins=plugins, **kernels)
    plan = prepare(config, tmp_path / "smoke", steps=1, cuda=False, gpus=0)
    written = yaml.safe_load(plan.config.read_text())
    assert {key: written[key] for key in kernels} == dict.fromkeys(kernels, False)
    rows = by_name(plan.rows + plan.skipped)
    assert rows["loss and layer kernels"].status == "not run here"
    assert rows["loss and layer kernels"].detail.startswith(", ".join(kernels) + " need CUDA (Triton)")
    # the settings row is the audit of the user's own config, not of the CPU's
    assert rows["settings"].detail == "no effect, warned: liger_fused_linear_cross_entropy"
    assert not plan.failed


def test_a_refused_setting_is_the_settings_row_and_nothing_launches(tmp_path, tiny_model):
    """Cut Cross Entropy without axolotl's fork: the real run's refusal, although the CPU run would
    have switched the kernel off (and bf16 with it, which Cut Cross Entropy's own check refuses)."""
    plugins = ["axolotl_aot.AOTPlugin", "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"]
    config = tiny_config(tmp_path, base_model=str(tiny_model), plugins=plugins, bf16=True)
    result = CliRunner().invoke(app, ["smoke", str(config), "--json"])
    assert result.exit_code == 1, result.output
    rows = by_name(json.loads(result.stdout))
    assert rows["settings"]["status"] == "failed"
    assert rows["settings"]["detail"].startswith("cut_cross_entropy: True cannot be used with rl: aot: ")
    assert "install Axolotl's fork of cut_cross_entropy" in rows["settings"]["detail"]
    assert rows["training"]["detail"] == "not started: a row above failed"


@pytest.mark.training
def test_a_config_error_shows_pydantics_reason_not_its_wrapper(tmp_path, tiny_model):
    config = tiny_config(tmp_path, base_model=str(tiny_model), weight_decay="lots", micro_batch_size="two")
    rows = by_name(run_smoke(config, workdir=tmp_path / "smoke"))
    assert rows["config"].status == "failed"
    assert "data formatting" not in rows and rows["training"].detail == "not reached: config failed"
    reasons = rows["config"].detail.split("; ")  # both of pydantic's reasons, each with its key
    assert sorted(reasons) == [
        "micro_batch_size: Input should be a valid integer, unable to parse string as an integer",
        "weight_decay: Input should be a valid number, unable to parse string as a number",
    ], rows["config"]
    assert "ValidationError: 2 validation errors for" in (tmp_path / "smoke/train.log").read_text()
