"""Whole-set evaluation: in training (every rank, every row once), in the report, and across runs."""

from __future__ import annotations

import csv
import json
import os
import random
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml
from axolotl.prompt_strategies.dpo.chatml import prompt_pairs as dpo_prompt_pairs
from axolotl.prompt_strategies.kto.chatml import prompt_pairs as kto_prompt_pairs
from axolotl.utils.dict import DictDefault
from axolotl_runs import LORA, ROOT, evaluate, free_port, make_config, small_dataset, tiny_config, train
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer
from typer.testing import CliRunner

from axolotl_aot.integration import plugin
from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.factory import build_trainer
from axolotl_aot.integration.modes import PAIRED, UNPAIRED
from axolotl_aot.integration.plugin import AOTPlugin, best_checkpoint_args, start_eval_args
from axolotl_aot.integration.trainers import AOTPairedTrainer, AOTUnpairedTrainer
from axolotl_aot.ot.dominance import dominance_stats
from axolotl_aot.ot.losses import aot_paired_loss, aot_unpaired_loss
from axolotl_aot.tools.validate import validate_file
from axolotl_aot_cli.app import app

DATA = ROOT / "axolotl_aot/data"
BETA = 0.5
STATS = ("aot/violation_fraction", "aot/win_rate", "aot/violation_area", "aot/min_quantile_margin")
runner = CliRunner()


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def eval_trainer(cls, models, folder: Path, dataset: Dataset, eval_batch: int):
    policy, reference = models
    common = {
        "output_dir": str(folder),
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": eval_batch,
        "report_to": [],
        "use_cpu": True,
        "bf16": False,
        "beta": BETA,
        "max_length": 64,
    }
    if cls is not AOTPairedTrainer:
        common["remove_unused_columns"] = False
    return build_trainer(
        PAIRED if cls is AOTPairedTrainer else UNPAIRED,
        AutoModelForCausalLM.from_pretrained(policy),
        AutoModelForCausalLM.from_pretrained(reference),
        args=common,
        settings=AOTArgs(aot_cost="squared_hinge"),
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(policy),
    )


def unpaired_rows(count: int) -> list[dict]:
    fn = kto_prompt_pairs(cfg=None)
    return [fn(row) for row in jsonl(DATA / "parity_unpaired_test.jsonl")[:count]]


def paired_rows(count: int) -> list[dict]:
    fn = dpo_prompt_pairs(cfg=None)
    return [fn(row) for row in jsonl(DATA / "parity_paired_test.jsonl")[:count]]


def test_unpaired_eval_ordered_by_label_equals_shuffled_and_the_whole_set(models, tmp_path):
    rows = unpaired_rows(21)
    ordered = sorted(rows, key=lambda row: not row["label"])  # all positives first: one-sided batches
    shuffled = random.Random(0).sample(rows, len(rows))
    results = []
    for name, subset in (("ordered", ordered), ("shuffled", shuffled)):
        trainer = eval_trainer(AOTUnpairedTrainer, models, tmp_path / name, Dataset.from_list(subset), 4)
        results.append(trainer.evaluate())
    # Other batches, other float32 sums: equal to float32 precision (the margins differ by 2e-6 of 0.3).
    for key in ("eval_loss", *(f"eval_{k}" for k in STATS), "eval_rewards/margins"):
        assert results[0][key] == pytest.approx(results[1][key], rel=1e-5, abs=1e-6), key
    assert results[0]["eval_aot/sort_size"] == results[1]["eval_aot/sort_size"] == 21
    # Oracle: every row scored in one batch by hand, then the loss and the statistics of the set.
    batch = trainer.data_collator([trainer.eval_dataset[i] for i in range(len(shuffled))])
    with torch.no_grad():
        rewards = (
            trainer.forward_rows(trainer.model, batch).columns.logps
            - trainer.compute_ref_log_probs(trainer.ref_model, batch)[0]
        )
    labels = torch.as_tensor(batch["label"], dtype=torch.bool)
    pos, neg = BETA * rewards[labels].double(), BETA * rewards[~labels].double()
    stats = dominance_stats(pos, neg)
    assert results[1]["eval_aot/violation_fraction"] == pytest.approx(stats.violation_fraction, abs=1e-6)
    assert results[1]["eval_aot/win_rate"] == pytest.approx(stats.win_rate, abs=1e-6)
    loss = aot_unpaired_loss(rewards[labels], rewards[~labels], beta=BETA, cost="squared_hinge")
    assert results[1]["eval_loss"] == pytest.approx(loss.item(), abs=1e-5)
    assert 0 < stats.violation_fraction < 1  # a real comparison, not a degenerate one


def eval_worker(rank: int, ranks: int, port: int, folder: str, models: tuple[Path, Path]) -> None:
    """``Trainer.evaluate`` under accelerate's multi-CPU state: gloo, each rank a shard of the set."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(ranks),
        LOCAL_WORLD_SIZE=str(ranks),
    )
    trainer = eval_trainer(
        AOTPairedTrainer, models, Path(folder) / str(rank), Dataset.from_list(paired_rows(5)), 2
    )
    assert trainer.accelerator.num_processes == ranks
    metrics = trainer.evaluate()
    torch.save(metrics, f"{folder}/{rank}.pt")


@pytest.mark.training
def test_two_ranks_with_unequal_shards_equal_one_process(models, tmp_path):
    # 5 pairs in batches of 2 per rank: 8 slots, the last batch padded by accelerate with pairs
    # repeated from the start, which must not be counted. Rank 0 keeps 3 pairs, rank 1 keeps 2.
    mp.spawn(eval_worker, args=(2, free_port(), str(tmp_path), models), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"{rank}.pt") for rank in range(2)]
    single = eval_trainer(
        AOTPairedTrainer, models, tmp_path / "one", Dataset.from_list(paired_rows(5)), 3
    ).evaluate()
    assert single["eval_aot/sort_size"] == 5
    for metrics in ranks:
        assert metrics["eval_aot/sort_size"] == 5
        for key in (*STATS, "rewards/accuracies", "rewards/chosen", "rewards/rejected"):
            assert metrics[f"eval_{key}"] == pytest.approx(single[f"eval_{key}"], abs=1e-6), key
        assert metrics["eval_loss"] == pytest.approx(single["eval_loss"], abs=1e-5)


def test_validate_warns_when_a_config_evaluates_nothing(tmp_path):
    def warnings(**changes) -> dict[str, str]:
        report = validate_file(tiny_config(tmp_path, **changes))
        return {p.key: p.message for p in report.problems if p.severity == "warning"}

    assert warnings() == {}  # the tiny example evaluates every 40 steps
    message = warnings(test_datasets=None, eval_steps=None)["test_datasets"]
    assert "evaluates nothing (it has neither test_datasets nor val_set_size)" in message
    assert (
        "evaluates nothing (eval_strategy is 'no')"
        in warnings(eval_steps=None, eval_strategy="no")["eval_strategy"]
    )


def test_best_checkpoint_direction_without_greater_is_better():
    def args(**cfg) -> dict:
        return best_checkpoint_args(DictDefault(cfg))

    assert args(metric_for_best_model="eval_aot/violation_fraction")["greater_is_better"] is False
    assert args(metric_for_best_model="aot/violation_area")["greater_is_better"] is False
    assert args(metric_for_best_model="eval_aot/win_rate")["greater_is_better"] is True
    assert args(metric_for_best_model="eval_loss")["greater_is_better"] is False
    assert (
        args(metric_for_best_model="eval_aot/win_rate", greater_is_better=False)["greater_is_better"] is False
    )
    assert args(load_best_model_at_end=True) == {"load_best_model_at_end": True}
    assert args() == {}


NO_STEP_0 = "no evaluation at step 0: before the first step the policy equals its reference"


def test_no_aot_run_evaluates_at_step_0_and_says_so_when_axolotl_would(monkeypatch):
    warnings: list[str] = []  # the calls: aot-cli's import elsewhere filters the log output
    monkeypatch.setattr(plugin.LOG, "warning", lambda message, *args: warnings.append(message % args))

    def args(**cfg) -> dict:
        return start_eval_args(DictDefault({"test_datasets": [{"path": "test.jsonl"}], **cfg}))

    assert args(eval_steps=40) == args(eval_strategy="epoch") == {"eval_on_start": False}
    assert [NO_STEP_0 in warning for warning in warnings] == [True, True]
    asked = args(test_datasets=None, val_set_size=0.1, eval_steps=40, eval_on_start=True)
    assert asked == {"eval_on_start": False}  # asked for (axolotl 0.21's key): still skipped
    assert warnings[-1].startswith("axolotl-aot: eval_on_start: true is ignored: before the first step")
    for quiet in (
        {"eval_steps": 40, "eval_on_start": False},  # axolotl 0.21 would not evaluate either
        {"eval_strategy": "no"},
        {"test_datasets": None, "eval_steps": 40},  # nothing to evaluate
    ):
        assert args(**quiet) == {"eval_on_start": False}
    assert len(warnings) == 3


def test_the_saved_adapter_is_loaded_only_under_axolotl_evaluate(monkeypatch):
    # Training keeps axolotl's RL loading (LoRA config only); axolotl.evaluate.evaluate's frame
    # switches the loader to lora_model_dir's adapter between pre_ and post_lora_load.
    aot, cfg, seen = AOTPlugin(), DictDefault(aot_mode="paired", lora_model_dir="adapter"), []

    def load() -> None:
        aot.pre_lora_load(cfg, None)
        seen.append(cfg.merge_lora)
        aot.post_lora_load(cfg, None)
        seen.append(cfg.merge_lora)

    load()
    fake = types.ModuleType("axolotl.evaluate")
    fake.evaluate = load
    monkeypatch.setitem(sys.modules, "axolotl.evaluate", fake)
    fake.evaluate()
    assert seen == [None, None, True, None]


# ---- through python -m axolotl.cli.train ----


def eval_logs(out: Path) -> dict[int, dict]:
    checkpoint = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry for entry in history if "eval_loss" in entry}


def report_json(*args: str) -> dict:
    with tempfile.TemporaryDirectory() as out:  # not the default ./aot-report in the repository
        result = runner.invoke(app, ["report", *args, "--json", "--out", out])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["runs"]


def assert_logged_equals_report(logged: dict, metrics: dict) -> None:
    assert metrics.keys() == {key.removeprefix("eval_") for key in logged if key.startswith("eval_")} - {
        "runtime",
        "samples_per_second",
        "steps_per_second",
        "model_preparation_time",  # axolotl evaluate's: the Trainer prepared the model in evaluate()
    }
    for key, value in metrics.items():
        assert logged[f"eval_{key}"] == pytest.approx(value, abs=1e-5 if key == "loss" else 1e-6), key


@pytest.fixture(scope="module")
def paired_run(tiny_model, tmp_path_factory) -> tuple[Path, Path, Path]:
    """rl: aot trained on 22 pairs with chosen and rejected swapped and evaluated on the same pairs
    unswapped, in batches of 8, every 2 steps (so dominance gets worse: the best checkpoint is an
    early one), keeping the best checkpoint by violation fraction and stopping after one evaluation
    without improvement: at step 4 of 8. (config, output_dir, evaluation file)."""
    folder = tmp_path_factory.mktemp("paired-eval")
    held_out = jsonl(DATA / "parity_paired_test.jsonl")[:22]
    swapped = [{**row, "chosen": row["rejected"], "rejected": row["chosen"]} for row in held_out]
    train_file = write_jsonl(folder / "swapped.jsonl", swapped)
    test_file = write_jsonl(folder / "test.jsonl", held_out)
    config = make_config(
        folder,
        "paired",
        tiny_model,
        max_steps=8,
        save_steps=2,
        eval_steps=2,
        eval_batch_size=8,
        learning_rate=0.002,
        metric_for_best_model="eval_aot/violation_fraction",
        load_best_model_at_end=True,
        early_stopping_patience=1,
    )
    cfg = yaml.safe_load(config.read_text())
    cfg["datasets"][0]["path"], cfg["test_datasets"][0]["path"] = str(train_file), str(test_file)
    config.write_text(yaml.safe_dump(cfg))
    done = train(config)
    assert done.returncode == 0, done.stderr[-4000:]
    return config, folder / "out", test_file


@pytest.mark.training
def test_paired_eval_is_whole_set_and_equals_the_report(paired_run):
    config, out, test_file = paired_run
    logs = eval_logs(out)
    assert sorted(logs) == [2, 4]  # no evaluation at step 0: it would score the reference against itself
    runs = report_json(f"{out}/checkpoint-*", "--config", str(config), "--data", str(test_file))
    (run,) = runs.values()
    assert [c["step"] for c in run["checkpoints"]] == [2, 4]
    for checkpoint in run["checkpoints"]:
        logged = logs[checkpoint["step"]]
        assert logged["eval_aot/sort_size"] == 22  # the whole set, not one batch of 8
        assert_logged_equals_report(logged, checkpoint["metrics"])


@pytest.mark.training
def test_load_best_model_at_end_keeps_the_lowest_violation(paired_run):
    _, out, _ = paired_run
    logs = eval_logs(out)
    violation = {step: entry["eval_aot/violation_fraction"] for step, entry in logs.items()}
    best = min(violation, key=violation.get)
    assert violation[best] < violation[max(violation)], violation  # the best is not the last
    state = json.loads((out / "checkpoint-4/trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(out / f"checkpoint-{best}")
    final, kept = (
        load_file(out / "model.safetensors"),
        load_file(out / f"checkpoint-{best}/model.safetensors"),
    )
    last = load_file(out / "checkpoint-4/model.safetensors")
    assert all(torch.equal(final[k], kept[k]) for k in kept)
    assert any(not torch.equal(final[k], last[k]) for k in last)


@pytest.mark.training
def test_early_stopping_patience_stops_when_the_aot_metric_stops_improving(paired_run):
    _, out, _ = paired_run
    violation = {step: entry["eval_aot/violation_fraction"] for step, entry in eval_logs(out).items()}
    assert violation[4] > violation[2], violation  # one evaluation without improvement: patience 1
    state = json.loads((out / "checkpoint-4/trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["max_steps"] == 8
    stopper = state["stateful_callbacks"]["EarlyStoppingCallback"]
    assert stopper["args"]["early_stopping_patience"] == 1
    assert stopper["attributes"]["early_stopping_patience_counter"] == 1
    assert not (out / "checkpoint-6").exists()


@pytest.mark.training
def test_unpaired_lora_step_scope_eval_of_label_ordered_rows_equals_the_report(tiny_model, tmp_path):
    rows = sorted(jsonl(DATA / "parity_unpaired_test.jsonl")[:30], key=lambda row: not row["label"])
    # Labels as a spreadsheet writes them: training, its evaluation and the report read "false" as False.
    rows = [{**row, "label": "TRUE" if row["label"] else "false"} for row in rows]
    test_file = write_jsonl(tmp_path / "test.jsonl", rows)  # positives first: one-sided batches of 8
    train_rows = [
        {**row, "label": str(row["label"]).lower()} for row in jsonl(DATA / "parity_unpaired_train.jsonl")
    ]
    train_file = write_jsonl(tmp_path / "train.jsonl", train_rows)
    config = make_config(
        tmp_path,
        "unpaired",
        tiny_model,
        max_steps=2,
        eval_steps=2,
        eval_batch_size=8,
        micro_batch_size=4,
        gradient_accumulation_steps=2,
        aot_sort_scope="step",  # training's scoring pass and evaluation do not mix
        **LORA,
    )
    cfg = yaml.safe_load(config.read_text())
    cfg["datasets"][0]["path"], cfg["test_datasets"][0]["path"] = str(train_file), str(test_file)
    config.write_text(yaml.safe_dump(cfg))
    done = train(config)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (done.stdout + done.stderr).count(NO_STEP_0) == 1
    logs = eval_logs(tmp_path / "out")
    assert sorted(logs) == [2]  # eval_steps without load_best_model_at_end: still none at step 0
    logged = logs[2]
    assert logged["eval_aot/sort_size"] == 30
    runs = report_json(str(tmp_path / "out/checkpoint-2"), "--config", str(config), "--data", str(test_file))
    (run,) = runs.values()
    assert_logged_equals_report(logged, run["checkpoints"][0]["metrics"])


def eval_summary(out: Path) -> dict[str, float]:
    """The evaluation set's metrics that ``axolotl evaluate`` wrote, under their logged ``eval_`` names."""
    with (out / "eval_summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    return {f"eval_{row['metric']}": float(row["validation"]) for row in rows if row["metric"] != "epoch"}


@pytest.mark.training
@pytest.mark.parametrize("mode", ["paired", "unpaired"])
def test_axolotl_evaluate_of_a_lora_adapter_equals_training_and_the_report(tiny_model, tmp_path, mode):
    config = make_config(tmp_path, mode, tiny_model, max_steps=2, eval_steps=2, **LORA)
    done = train(config)
    assert done.returncode == 0, done.stderr[-4000:]
    adapter = tmp_path / "out/checkpoint-2"
    cfg = yaml.safe_load(config.read_text())
    cfg["datasets"][0]["path"] = str(small_dataset(tmp_path, mode, 8))  # evaluate scores it too
    cfg.update(lora_model_dir=str(adapter), output_dir=str(tmp_path / "evaluated"))
    evaluated = tmp_path / "evaluate.yml"
    evaluated.write_text(yaml.safe_dump(cfg))
    done = evaluate(evaluated)
    assert done.returncode == 0, done.stderr[-4000:]
    assert NO_STEP_0 not in done.stdout + done.stderr  # evaluate trains nothing
    logged = eval_summary(tmp_path / "evaluated")
    assert logged["eval_rewards/margins"] != 0 and logged["eval_rewards/chosen"] != 0  # not base vs base
    (run,) = report_json(str(adapter), "--config", str(config)).values()
    assert_logged_equals_report(logged, run["checkpoints"][0]["metrics"])
    in_training = eval_logs(tmp_path / "out")[2]
    for key, value in logged.items():
        if key in in_training and not key.endswith(("runtime", "per_second")):
            assert value == pytest.approx(in_training[key], abs=1e-5 if key == "eval_loss" else 1e-6), key


# ---- aot-cli report: a DPO baseline next to an AOT run ----


@pytest.mark.training
def test_report_compares_a_dpo_run_with_an_aot_run(paired_run, tiny_model, tmp_path):
    aot_config, aot_out, test_file = paired_run
    dpo_config = make_config(
        tmp_path,
        "paired",
        tiny_model,
        rl="dpo",
        plugins=None,
        aot_cost=None,
        aot_sort_scope=None,
        max_steps=2,
    )
    done = train(dpo_config)
    assert done.returncode == 0, done.stderr[-4000:]
    checkpoint = tmp_path / "out/checkpoint-2"
    args = ["--run", f"dpo={checkpoint}", "--config", f"dpo={dpo_config}"]
    args += [
        "--run",
        f"aot={aot_out}/checkpoint-*",
        "--config",
        f"aot={aot_config}",
        "--data",
        str(test_file),
    ]
    scorer = tmp_path / "scorer.py"
    scorer.write_text("def score(prompt, completion):\n    return float(completion.count('even'))\n")
    args += ["--generate", "--reward-fn", f"{scorer}:score", "--samples", "2", "--max-new-tokens", "4"]
    result = runner.invoke(app, ["report", *args, "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "runs side by side" in text
    for row in ("dpo (dpo) │ step 2", "aot (aot) │ step 2", "aot (aot) │ step 4"):
        assert row in text, row
    saved = json.loads((tmp_path / "rep/report.json").read_text())["runs"]
    assert list(saved) == ["dpo", "aot"]
    assert (saved["dpo"]["method"], saved["aot"]["method"]) == ("dpo", "aot")
    plots = [Path(c["plot"]).name for run in saved.values() for c in run["checkpoints"]]
    assert plots == [
        "dpo_checkpoint-2_rewards.png",
        "aot_checkpoint-2_rewards.png",
        "aot_checkpoint-4_rewards.png",
    ]
    assert (tmp_path / "rep/runs_rewards.png").read_bytes()[:4] == b"\x89PNG"
    # --generate: each run's checkpoints sampled against the same base model, which both runs sample
    # alike (same prompts, same seeds), and the reward-KL plot of both runs.
    assert [saved[run]["generation"]["samples"] for run in saved] == [2 * 22, 2 * 22]
    assert [c["generation"]["samples_per_prompt"] for run in saved.values() for c in run["checkpoints"]] == [
        2
    ] * 3
    references = [(tmp_path / f"rep/samples/{run}_reference.jsonl").read_text() for run in saved]
    assert references[0] == references[1]
    assert (tmp_path / "rep/generation_frontier.png").read_bytes()[:4] == b"\x89PNG"
    # The DPO run's rewards against TRL's own DPO tokenization and log-probs summed by hand.
    dpo = saved["dpo"]["checkpoints"][0]
    rows = paired_rows(22)
    trainer = DPOTrainer(
        AutoModelForCausalLM.from_pretrained(checkpoint),
        AutoModelForCausalLM.from_pretrained(tiny_model),
        args=DPOConfig(output_dir=str(tmp_path / "x"), report_to=[], use_cpu=True, bf16=False, max_length=64),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(checkpoint),
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])

    def summed_logps(model: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        per_token = logits[:, :-1].log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
        return (per_token * batch["completion_mask"][:, 1:]).sum(-1).double()

    policy, reference = summed_logps(trainer.model), summed_logps(trainer.ref_model)
    chosen, rejected = (policy - reference).chunk(2)
    stats = dominance_stats(chosen, rejected)
    assert (dpo["n_pos"], dpo["n_neg"]) == (22, 22)
    assert dpo["rewards"]["violation_fraction"] == pytest.approx(stats.violation_fraction, abs=1e-6)
    assert dpo["rewards"]["win_rate"] == pytest.approx(stats.win_rate, abs=1e-6)
    assert dpo["rewards"]["mean_pos"] == pytest.approx(stats.mean_pos, abs=1e-4)
    assert dpo["pair_accuracy"] == pytest.approx(float((chosen > rejected).double().mean()), abs=1e-9)
    loss = aot_paired_loss(*policy.chunk(2), *reference.chunk(2), beta=0.1)
    assert dpo["aot_loss"]["logistic"] == pytest.approx(loss.item(), abs=1e-5)
    assert np.abs(chosen.numpy()).max() > 0  # the DPO checkpoint moved away from its reference
