"""aot-cli report on checkpoints trained here: the numbers match the trainer, and bad inputs fail clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from axolotl.prompt_strategies.dpo.chatml import prompt_pairs
from axolotl_runs import BIN, LORA, ROOT, make_config, train
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from axolotl_aot.ot.dominance import dominance_stats
from axolotl_aot.tools import report as lib
from axolotl_aot.tools.report.reference import recorded_base
from axolotl_aot.tools.tiny_model import build_tiny_model
from axolotl_aot_cli.app import app

TEST_PAIRS = ROOT / "axolotl_aot/data/parity_paired_test.jsonl"
TEST_UNPAIRED = ROOT / "axolotl_aot/data/parity_unpaired_test.jsonl"
runner = CliRunner()


@pytest.fixture(scope="module")
def paired_run(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    """A full fine-tune with two checkpoints: (config, output_dir)."""
    folder = tmp_path_factory.mktemp("paired-run")
    config = make_config(folder, "paired", tiny_model, max_steps=6, save_steps=3)
    done = train(config)
    assert done.returncode == 0, done.stderr[-3000:]
    return config, folder / "out"


@pytest.fixture(scope="module")
def adapter_run(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    """A LoRA run on unpaired data: (config, output_dir)."""
    folder = tmp_path_factory.mktemp("adapter-run")
    config = make_config(folder, "unpaired", tiny_model, max_steps=4, micro_batch_size=8, **LORA)
    done = train(config)
    assert done.returncode == 0, done.stderr[-3000:]
    return config, folder / "out"


@pytest.mark.training
def test_paired_report_over_checkpoints(paired_run, tmp_path):
    config, out = paired_run
    args = ["report", f"{out}/checkpoint-*", "--config", str(config), "--data", str(TEST_PAIRS)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "rep"), "--batch-size", "7"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for expected in (
        "violation fraction (rewards)",
        "pair accuracy",
        "AOT loss (squared_hinge)",
        "verdict:",
        "over training",
    ):
        assert expected in text
    saved = json.loads((tmp_path / "rep/report.json").read_text())["runs"]["cfg"]  # named after cfg.yml
    assert [Path(c["checkpoint"]).name for c in saved["checkpoints"]] == ["checkpoint-3", "checkpoint-6"]
    assert [c["step"] for c in saved["checkpoints"]] == [3, 6]
    assert [Path(c["plot"]).name for c in saved["checkpoints"]] == [
        "cfg_checkpoint-3_rewards.png",
        "cfg_checkpoint-6_rewards.png",
    ]
    cfg = lib.load_report_config(config, TEST_PAIRS)
    dataset = lib.load_eval_dataset(cfg, max_samples=None)
    for entry in saved["checkpoints"]:
        assert (entry["n_pos"], entry["n_neg"]) == (100, 100)
        # the saved fraction is the dominance statistic of the checkpoint's own rewards, scored here again
        model, reference, tokenizer = lib.load_models(Path(entry["checkpoint"]), cfg, None, "cpu")
        scores = lib.score(model, reference, tokenizer, dataset, cfg, batch_size=7, device="cpu")
        expected = dominance_stats(scores.reward_pos, scores.reward_neg).violation_fraction
        assert entry["rewards"]["violation_fraction"] == pytest.approx(expected, abs=1e-9)
        assert set(entry["aot_loss"]) == {"logistic", "squared_hinge", "least_squares"}
        assert Path(entry["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "rep/violation_trend.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.training
def test_report_rewards_are_what_the_trainer_computes(paired_run):
    """The report's pipeline (config type, tokenization, bucketing) against a trainer built by hand."""
    config, out = paired_run
    checkpoint = out / "checkpoint-6"
    cfg = lib.load_report_config(config, TEST_PAIRS)
    dataset = lib.load_eval_dataset(cfg, max_samples=None)
    model, reference, tokenizer = lib.load_models(checkpoint, cfg, None, "cpu")
    scores = lib.score(model, reference, tokenizer, dataset, cfg, batch_size=5, device="cpu")

    from axolotl_aot.integration.factory import build_trainer
    from axolotl_aot.integration.modes import PAIRED

    rows = [json.loads(line) for line in TEST_PAIRS.read_text().splitlines()[:12]]
    formatted = Dataset.from_list([prompt_pairs(cfg=None)(row) for row in rows])
    trainer = build_trainer(
        PAIRED,
        AutoModelForCausalLM.from_pretrained(checkpoint),
        AutoModelForCausalLM.from_pretrained(cfg.base_model),
        args={
            "output_dir": str(out / "x"),
            "per_device_train_batch_size": 12,
            "report_to": [],
            "use_cpu": True,
            "max_length": cfg.sequence_len,
            "beta": 0.1,
            "bf16": False,  # axolotl defaults to bf16; the report scores in float32 on a CPU
        },
        train_dataset=formatted,
        processing_class=AutoTokenizer.from_pretrained(checkpoint),
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(12)])
    with torch.no_grad():
        chosen, rejected = trainer.forward_rows(trainer.model, batch).columns[:2]
        ref_chosen, ref_rejected = trainer.compute_ref_log_probs(trainer.ref_model, batch)
    # axolotl shuffles what it loads: find each hand-formatted row among the report's rows.
    position = {(r["prompt"], r["chosen"], r["rejected"]): i for i, r in enumerate(dataset)}
    found = [position[(r["prompt"], r["chosen"], r["rejected"])] for r in formatted]
    np.testing.assert_allclose(scores.reward_pos[found], (chosen - ref_chosen).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        scores.reward_neg[found], (rejected - ref_rejected).numpy(), rtol=1e-5, atol=1e-5
    )
    assert np.abs(scores.reward_pos).max() > 0  # a trained checkpoint differs from its reference
    summary = lib.summarize(checkpoint, scores, beta=0.1)
    assert summary.rewards == dominance_stats(scores.reward_pos, scores.reward_neg)
    assert summary.pair_accuracy == pytest.approx(float(np.mean(scores.reward_pos > scores.reward_neg)))


@pytest.mark.training
def test_adapter_report_on_unpaired_data_uses_the_disabled_adapter_as_reference(adapter_run, tmp_path):
    config, out = adapter_run
    result = runner.invoke(
        app,
        [
            "report",
            str(out),
            "--config",
            str(config),
            "--data",
            str(TEST_UNPAIRED),
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    checkpoints = json.loads(result.stdout)["runs"]["cfg"]["checkpoints"]
    assert [Path(c["checkpoint"]).name for c in checkpoints] == ["checkpoint-4", "out"]  # the final last
    entry = checkpoints[-1]
    labels = [json.loads(line)["label"] for line in TEST_UNPAIRED.read_text().splitlines()]
    assert (entry["n_pos"], entry["n_neg"]) == (sum(labels), len(labels) - sum(labels))
    assert entry["pair_accuracy"] is None
    cfg = lib.load_report_config(config, TEST_UNPAIRED)
    model, reference, _ = lib.load_models(out, cfg, None, "cpu")
    assert reference is None and hasattr(model, "disable_adapter")  # one model: the base is the reference


@pytest.mark.training
def test_generation_of_an_adapter_samples_the_reference_with_the_adapter_disabled(
    adapter_run, tiny_model, tmp_path
):
    """--generate on a LoRA checkpoint: the reference's samples are the base model's own (the adapter
    disabled, same seeds), and each sample's log-ratio is the adapter's log-prob minus the base's,
    as a forward of that sample alone computes them."""
    from peft import PeftModel

    from axolotl_aot.integration import compat
    from axolotl_aot.tools.generation import SamplingSettings, load_prompts, sample

    config, out = adapter_run
    scorer = tmp_path / "lengths.py"
    scorer.write_text("def score(prompt, completion):\n    return float(len(completion.split()))\n")
    args = ["--generate", "--reward-fn", f"{scorer}:score", "--samples", "2", "--max-new-tokens", "6"]
    checkpoint = out / "checkpoint-4"
    args += ["--data", str(TEST_UNPAIRED), "--max-samples", "4", "--out", str(tmp_path / "rep"), "--json"]
    result = runner.invoke(app, ["report", str(checkpoint), "--config", str(config), *args])
    assert result.exit_code == 0, result.output
    generation = json.loads(result.stdout)["runs"]["cfg"]["checkpoints"][0]["generation"]
    assert (generation["samples"], generation["prompts"]) == (8, 4)
    cfg = lib.load_report_config(config, TEST_UNPAIRED)
    prompts = load_prompts(cfg, compat.load_tokenizer(cfg), None, 4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    own = sample(base, tokenizer, [p.ids for p in prompts], SamplingSettings(2, 6, batch_size=16))
    reference = [json.loads(line) for line in (tmp_path / "rep/samples/cfg_reference.jsonl").open()]
    assert [r["completion"] for r in reference] == own.texts
    ours = [json.loads(line) for line in (tmp_path / "rep/samples/cfg_checkpoint-4_samples.jsonl").open()]
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), checkpoint).eval()
    for index, row in enumerate(ours):
        ids, tokens = prompts[index // 2].ids, row["token_ids"]
        assert (tokens[-1] == tokenizer.eos_token_id) == row["ended"]
        logps = []
        for model in (policy, base):
            with torch.no_grad():
                logits = model(torch.tensor([ids + tokens])).logits[0, len(ids) - 1 : -1]
            logps.append(float(torch.log_softmax(logits, -1).gather(1, torch.tensor(tokens)[:, None]).sum()))
        assert row["log_ratio"] == pytest.approx(logps[0] - logps[1], abs=1e-4)
    assert max(abs(row["log_ratio"]) for row in ours) > 1e-3  # the adapter moved the model


@pytest.mark.training
def test_installed_executable(paired_run, tmp_path):
    config, out = paired_run
    done = subprocess.run(
        [
            BIN / "aot-cli",
            "report",
            out / "checkpoint-6",
            "--config",
            config,
            "--data",
            TEST_PAIRS,
            "--max-samples",
            "10",
            "--out",
            tmp_path,
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"]["cfg"]["checkpoints"][0]["n_pos"] == 10


@pytest.fixture(scope="module")
def other_vocab_model(tmp_path_factory) -> Path:
    """A model whose tokenizer differs from the tiny model's."""
    from axolotl_aot.tools import tiny_model

    path = tmp_path_factory.mktemp("other") / "model"
    build_tiny_model(path)
    tiny_model.build_tokenizer(vocab_size=280).save_pretrained(path)  # the bundled text yields 301 tokens
    return path


@pytest.mark.training
def test_bad_inputs_fail_with_one_clear_sentence(paired_run, other_vocab_model, tmp_path):
    config, out = paired_run
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    unpaired_file = TEST_UNPAIRED
    cases = [
        ([str(tmp_path)], [], "is not a checkpoint: it has neither config.json nor adapter_config.json"),
        ([f"{tmp_path}/checkpoint-*"], [], "no checkpoint matches"),
        ([str(out / "checkpoint-6")], ["--data", str(unpaired_file)], "has no column 'chosen'"),
        ([str(out / "checkpoint-6")], ["--data", str(empty)], "the evaluation set is empty"),
        ([str(out / "checkpoint-6")], ["--data", str(tmp_path / "none.jsonl")], "no such evaluation file"),
        (
            [str(out / "checkpoint-6")],
            ["--ref", str(other_vocab_model), "--force-ref"],
            "does not match the reference",
        ),
        # --out is checked first, before the (here also bad) checkpoints are looked at
        ([str(tmp_path)], ["--out", str(a_file)], f"--out {a_file} is a file"),
        ([str(tmp_path)], ["--out", str(a_file / "sub")], "cannot create the folder"),
    ]
    for checkpoints, extra, message in cases:
        data = [] if "--data" in extra else ["--data", str(TEST_PAIRS)]
        out_dir = [] if "--out" in extra else ["--out", str(tmp_path / "o")]
        result = runner.invoke(
            app, ["report", *checkpoints, "--config", str(config), *data, *extra, *out_dir]
        )
        assert result.exit_code == 1, (message, result.output)
        flat = "".join(ch for ch in result.output if not ch.isspace() and ch != "│")  # rich wraps in a box
        assert "".join(message.split()) in flat, result.output
        assert "Traceback" not in result.output
    assert runner.invoke(app, ["report", str(out)]).exit_code == 2  # --config is required


@pytest.mark.training
def test_usage_errors_of_several_runs(paired_run):
    config, out = paired_run
    cases = [
        ([str(out), "--run", f"a={out}", "--config", f"a={config}"], "not both"),
        (["--run", f"a={out}", "--config", f"b={config}"], "'b' is not a --run name"),
        (["--run", f"a={out}", "--run", f"b={out}", "--config", f"a={config}"], "no config for run(s) b"),
        (["--run", str(out), "--config", f"a={config}"], "expected NAME=VALUE"),
        (
            ["--run", f"a={out}", "--config", f"a={config}", "--data", "a=x", "--data", "c=y"],
            "'c' is not a run",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["report", *args])
        assert result.exit_code == 2, (message, result.output)
        flat = "".join(ch for ch in result.output if not ch.isspace() and ch != "│")  # rich wraps in a box
        assert "".join(message.split()) in flat, result.output


@pytest.mark.training
def test_an_unpaired_evaluation_set_of_one_label_is_named_as_such(adapter_run, tmp_path):
    config, out = adapter_run
    rows = [line for line in TEST_UNPAIRED.read_text().splitlines() if json.loads(line)["label"]]
    positives = tmp_path / "positives.jsonl"
    positives.write_text("\n".join(rows) + "\n")
    result = runner.invoke(
        app, ["report", str(out), "--config", str(config), "--data", str(positives), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"the evaluation set has {len(rows)} with label=True and 0 with label=False" in text
    assert "training set" not in text


@pytest.mark.training
def test_an_output_dir_reports_its_checkpoints_in_step_order_then_the_final_model(paired_run, tmp_path):
    config, out = paired_run
    args = ["report", str(out), "--config", str(config), "--data", str(TEST_PAIRS), "--max-samples", "12"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "rep/report.json").read_text())["runs"]["cfg"]["checkpoints"]
    assert [(Path(c["checkpoint"]).name, c["step"]) for c in saved] == [
        ("checkpoint-3", 3),
        ("checkpoint-6", 6),
        ("out", None),
    ]
    last, final = saved[1], saved[2]  # the final model is the model of the last step
    assert final["rewards"]["mean_pos"] == pytest.approx(last["rewards"]["mean_pos"], abs=1e-4)
    trend = result.output[result.output.index("over training") :]
    rows = [line for line in trend.splitlines() if "cfg (aot)" in line]
    assert [row.split("│")[2].strip() for row in rows] == ["reference", "step 3", "step 6", "final (out)"]
    assert (tmp_path / "rep/violation_trend.png").exists()


def test_json_errors_are_objects_on_stdout_with_the_exit_code(tmp_path):
    config = tmp_path / "cfg.yml"
    config.write_text("rl: aot\n")
    cases = [
        (["report", f"{tmp_path}/checkpoint-*", "--config", str(config)], 1, "no checkpoint matches"),
        (["report", str(tmp_path)], 2, "each run needs the config it was trained with"),  # a usage error
        (["report", str(tmp_path), "--config", str(config), "--batch-size", "0"], 2, "--batch-size"),
    ]
    for args, code, text in cases:
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--json"])
        assert result.exit_code == code, result.output
        error = json.loads(result.stdout)
        assert error.keys() == {"error", "exit_code"} and error["exit_code"] == code, error
        assert text in error["error"]
        assert "Traceback" not in result.output


def test_missing_paths_fail_before_the_heavy_imports(tmp_path):
    """Each path is checked, with its own message, before axolotl's training stack is imported."""
    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    config = tmp_path / "cfg.yml"
    config.write_text("rl: aot\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        ([str(tmp_path / "none")], [], "none: not a checkpoint folder (no such folder)"),
        ([str(checkpoint)], ["--config", str(tmp_path / "none.yml")], "none.yml: no such config file"),
        ([str(checkpoint)], ["--data", str(tmp_path / "none.jsonl")], "none.jsonl: no such evaluation file"),
        ([str(checkpoint)], ["--data", str(a_file)], "a-file: unsupported file type"),
        ([str(checkpoint)], ["--out", str(a_file)], f"--out {a_file} is a file"),
    ]
    script = textwrap.dedent(
        f"""
        import json, sys
        from typer.testing import CliRunner
        from axolotl_aot_cli.app import app

        results = []
        for checkpoints, extra in {[(c, e) for c, e, _ in cases]!r}:
            config = [] if "--config" in extra else ["--config", {str(config)!r}]
            out = [] if "--out" in extra else ["--out", {str(tmp_path / "o")!r}]
            result = CliRunner().invoke(app, ["report", *checkpoints, *config, *extra, *out, "--json"])
            results.append([result.exit_code, json.loads(result.stdout)["error"]])
        heavy = ("trl", "transformers", "datasets", "peft", "axolotl.utils.data")
        print(json.dumps({{"results": results, "heavy": [m for m in heavy if m in sys.modules]}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["heavy"] == []
    for (code, message), (_, _, expected) in zip(found["results"], cases, strict=True):
        assert code == 1 and expected in message, (message, expected)


@pytest.mark.training
def test_no_temporary_folder_is_left_behind(paired_run, tmp_path):
    config, out = paired_run
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [
            BIN / "aot-cli",
            "report",
            out / "checkpoint-3",
            out / "checkpoint-6",
            "--config",
            config,
            "--data",
            TEST_PAIRS,
            "--max-samples",
            "4",
            "--out",
            tmp_path / "rep",
            "--json",
        ],
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout)["runs"]["cfg"]["checkpoints"]) == 2
    assert sorted(p.name for p in scratch.iterdir()) == []


@pytest.mark.training
def test_outputs_that_do_not_load_as_saved_are_errors_naming_the_fix(paired_run, adapter_run, tmp_path):
    """Sharded engines' folders without whole weights, and weights whose names do not match (loaders
    only warn and keep the initial weights there): an error, never a score of an untrained model."""
    import shutil

    from safetensors.torch import load_file, save_file

    config, out = paired_run
    adapter_config, adapter_out = adapter_run

    def folder(name: str, source: Path, keep: tuple[str, ...]) -> Path:
        path = tmp_path / name
        path.mkdir()
        for file in keep:
            shutil.copy(source / file, path / file)
        return path

    zero3 = folder("zero3", out / "checkpoint-6", ("config.json",))
    (zero3 / "global_step6").mkdir()
    fsdp = folder("fsdp", out / "checkpoint-6", ("config.json",))
    (fsdp / "pytorch_model_fsdp_0").mkdir()
    partial = folder(
        "partial", out / "checkpoint-6", ("config.json", "tokenizer.json", "tokenizer_config.json")
    )
    weights = load_file(out / "checkpoint-6/model.safetensors")
    weights.pop("lm_head.weight")
    save_file(weights, partial / "model.safetensors", metadata={"format": "pt"})
    prefixless = folder("prefixless", adapter_out, ("adapter_config.json",))
    adapter = load_file(adapter_out / "adapter_model.safetensors")
    save_file(
        {k.removeprefix("base_model.model."): v for k, v in adapter.items()},
        prefixless / "adapter_model.safetensors",
    )
    cases = [
        (zero3, config, "stage3_gather_16bit_weights_on_model_save: true"),
        (zero3, config, "zero_to_fp32.py"),
        (fsdp, config, "axolotl.cli.merge_sharded_fsdp_weights CONFIG --output_dir"),
        (partial, config, "['lm_head.weight']): they would be scored at their random initialisation"),
        (prefixless, adapter_config, "the keys lack PEFT's 'base_model.model.' prefix"),
    ]
    for checkpoint, cfg, message in cases:
        data = TEST_PAIRS if cfg is config else TEST_UNPAIRED
        args = [
            "report",
            str(checkpoint),
            "--config",
            str(cfg),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (message, result.output)
        flat = "".join(ch for ch in result.output if not ch.isspace() and ch != "│")
        assert "".join(message.split()) in flat, result.output
        assert "Traceback" not in result.output


def test_the_reference_must_be_the_model_a_checkpoint_was_trained_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base, other = tmp_path / "base", tmp_path / "other"
    base.mkdir(), other.mkdir()
    adapter = tmp_path / "run/checkpoint-3"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "base"}))
    assert recorded_base(adapter) == ("base", "adapter_config.json's base_model_name_or_path")
    assert lib.reference_problem(adapter, str(base), None) is None  # a relative path: the same folder
    problem = lib.reference_problem(adapter, str(other), None)
    assert problem == (
        f"{adapter} was trained from base (adapter_config.json's base_model_name_or_path), but the "
        f"reference would be the config's base_model {other}: the rewards would compare it with another "
        f"model. Pass --ref base, or fix base_model in the config; --force-ref scores against {other} anyway"
    )
    assert lib.reference_problem(adapter, str(other), "./base") is None  # the checkpoint's record decides
    assert "but the reference would be --ref other" in lib.reference_problem(adapter, "base", "other")

    full = tmp_path / "full/checkpoint-3"
    full.mkdir(parents=True)
    (full / "config.json").write_text("{}")
    assert recorded_base(full) is None
    assert lib.reference_problem(full, "base", str(base)) is None
    assert lib.reference_problem(full, "base", "other").startswith(
        "--ref other is not the config's base_model base, which the run trained from"
    )
    # TRL's model card in the output_dir names a hub base model
    (full.parent / "README.md").write_text("---\nbase_model: org/model\nlibrary_name: transformers\n---\n")
    assert recorded_base(full) == ("org/model", f"the model card {full.parent / 'README.md'}")
    assert lib.reference_problem(full, "org/model", None) is None
    assert "was trained from org/model (the model card" in lib.reference_problem(full, "org/other", None)
    assert recorded_base(full.parent) == recorded_base(full)  # the final model in the output_dir
    (full.parent / "merged").mkdir()
    assert recorded_base(full.parent / "merged") is None  # only a checkpoint-N folder reads its parent's


@pytest.mark.training
def test_another_reference_than_the_trained_one_is_refused_unless_forced(
    paired_run, adapter_run, models, tmp_path
):
    """An adapter whose config names another base, and a full model with another --ref: refused,
    naming both models; --force-ref scores against the given one."""
    tiny, other = models
    adapter_config, adapter_out = adapter_run
    moved = tmp_path / "moved.yml"
    moved.write_text(adapter_config.read_text().replace(str(tiny), str(other)))
    config, out = paired_run
    common = ["--max-samples", "8", "--out", str(tmp_path / "rep"), "--json"]
    cases = [
        (
            [str(adapter_out), "--config", str(moved), "--data", str(TEST_UNPAIRED)],
            f"was trained from {tiny}",
        ),
        (
            [
                str(out / "checkpoint-6"),
                "--config",
                str(config),
                "--data",
                str(TEST_PAIRS),
                "--ref",
                str(other),
            ],
            f"--ref {other} is not the config's base_model {tiny}",
        ),
    ]
    for args, message in cases:
        refused = runner.invoke(app, ["report", *args, *common])
        assert refused.exit_code == 1, refused.output
        error = json.loads(refused.stdout)["error"]
        assert message in error and "--force-ref scores against" in error, error
        forced = runner.invoke(app, ["report", *args, "--force-ref", *common])
        assert forced.exit_code == 0, forced.output
        (run,) = json.loads(forced.stdout)["runs"].values()
        assert run["checkpoints"]
