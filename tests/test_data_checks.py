"""Prepared datasets the AOT trainers cannot use are refused with the cause and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from axolotl.utils.dict import DictDefault
from axolotl_runs import ROOT, make_config, tiny_config, train
from datasets import Dataset

from axolotl_aot.integration.data_checks import check_prepared_datasets
from axolotl_aot.integration.plugin import check_source_files
from axolotl_aot.tools.validate import validate_file

DATA = ROOT / "axolotl_aot/data"
PAIRED = Dataset.from_dict({"prompt": ["p"], "chosen": ["a"], "rejected": ["b"]})


def source(tmp_path: Path, rows: int) -> list[DictDefault]:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n" for _ in range(rows))
    )
    return [DictDefault(path=str(path), ds_type="json", split="train", type="chatml.prompt_pairs")]


def cfg(**keys) -> DictDefault:
    return DictDefault({"aot_mode": "paired", "sequence_len": 64, "hf_use_auth_token": False, **keys})


def test_a_training_set_the_length_filter_emptied_names_the_rows_and_the_fix(tmp_path):
    with pytest.raises(ValueError) as error:
        check_prepared_datasets(cfg(datasets=source(tmp_path, 5)), PAIRED.select([]), None)
    message = str(error.value)
    assert message.startswith("rl: aot: the training set is empty. All 5 rows of datasets were dropped")
    assert "sequence_len: 64 tokens). Raise sequence_len, or set excess_length_strategy: truncate" in message


def test_an_empty_source_is_told_apart_from_a_filtered_one(tmp_path):
    with pytest.raises(ValueError, match="The files of datasets hold no rows: point datasets at data"):
        check_prepared_datasets(cfg(datasets=source(tmp_path, 0)), PAIRED.select([]), None)


def test_an_empty_evaluation_set_says_how_to_train_without_one(tmp_path):
    with pytest.raises(ValueError) as error:
        check_prepared_datasets(cfg(test_datasets=source(tmp_path, 3)), PAIRED, PAIRED.select([]))
    message = str(error.value)
    assert message.startswith(
        "rl: aot: the evaluation set is empty. All 3 rows of test_datasets were dropped"
    )
    assert message.endswith("Or remove test_datasets to train without evaluation.")


@pytest.mark.parametrize(("name", "sets"), [("training", (False, True)), ("evaluation", (True, False))])
def test_a_one_sided_unpaired_set_is_refused(name, sets):
    both, one = Dataset.from_dict({"label": [True, False]}), Dataset.from_dict({"label": [True, True]})
    train, evaluation = (both if ok else one for ok in sets)
    with pytest.raises(ValueError, match=f"the {name} set has 2 with label=True and 0 with label=False"):
        check_prepared_datasets(cfg(aot_mode="unpaired"), train, evaluation)


def rows_file(
    tmp_path: Path,
    name: str,
    mode: str,
    rows: int,
    *,
    label: bool | None = None,
    long: bool = False,
    line: int | None = None,
    bad: str | None = None,
):
    """The first ``rows`` bundled rows of ``mode`` (optionally of one label, or made too long), as a file;
    ``bad`` breaks 1-based line ``line``: "utf8" (a byte that is not UTF-8), "empty" (an empty completion)
    or "label" (a label that is none)."""
    data = [json.loads(line) for line in (DATA / f"parity_{mode}_train.jsonl").open()]
    if label is not None:
        data = [row for row in data if row["label"] == label]
    data = data[:rows]
    if long:  # far beyond the tiny configs' sequence_len of 64 tokens (one token per digit)
        data = [{**row, "prompt": row["prompt"] + " " + "7" * 200} for row in data]
    if bad == "empty":
        data[line - 1]["completion"] = ""
    if bad == "label":
        data[line - 1]["label"] = "maybe"
    lines = [json.dumps(row).encode() for row in data]
    if bad == "utf8":  # Latin-1 text, as an old export writes it
        lines[line - 1] = lines[line - 1].replace(b'"prompt": "', b'"prompt": "caf\xe9 ')
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


@pytest.mark.parametrize(
    ("mode", "bad", "message"),
    [
        (
            "paired",
            "utf8",
            "datasets[0].path: {path} line 9: undecodable line: 'utf-8' codec can't decode byte 0xe9",
        ),
        (
            "unpaired",
            "empty",
            "datasets[0].type: {path} line 9, read as is (no type:): it has no completion; rl: aot_unpaired "
            "needs prompt, completion, label",
        ),
        (
            "unpaired",
            "label",
            "datasets[0].type: {path} line 9, read as is (no type:): label 'maybe' is not a label; a "
            "label is true/false",
        ),
    ],
)
def test_training_refuses_a_bad_row_anywhere_with_validates_message(tmp_path, tiny_model, mode, bad, message):
    """A bad 9th line (beyond the rows a chat template renders) is refused by training's data check,
    before axolotl reads the file, with the message ``aot-cli validate`` gives."""
    path = rows_file(tmp_path, "train", mode, 16, line=9, bad=bad)
    datasets = [{"path": path, "ds_type": "json", "split": "train"}]
    loaded = DictDefault({"aot_mode": mode, "datasets": [DictDefault(d) for d in datasets]})
    with pytest.raises(SystemExit) as stop:
        check_source_files(loaded)
    expected = message.format(path=path)
    assert str(stop.value).startswith(f"axolotl-aot: {expected}"), stop.value
    config = tiny_config(tmp_path, mode, base_model=str(tiny_model), datasets=datasets, test_datasets=None)
    found = validate_file(config).problems
    assert [f"{p.key}: {p.message}" for p in found if p.severity == "error"] == [str(stop.value)[13:]]


@pytest.mark.training
@pytest.mark.parametrize(
    ("mode", "train_rows", "test_rows", "message"),
    [
        (
            "paired",
            {"rows": 16, "long": True},
            None,
            "rl: aot: the training set is empty. All 16 rows of datasets were dropped by axolotl's length "
            "filter",
        ),
        (
            "unpaired",
            {"rows": 16, "label": True},
            None,
            "the training set has 16 with label=True and 0 with label=False",
        ),
        (
            "paired",
            {"rows": 16},
            {"rows": 6, "long": True},
            "rl: aot: the evaluation set is empty. All 6 rows of test_datasets were dropped",
        ),
        (
            "unpaired",
            {"rows": 16},
            {"rows": 6, "label": False},
            "the evaluation set has 0 with label=True and 6 with label=False",
        ),
        (
            "paired",
            {"rows": 16, "line": 9, "bad": "utf8"},
            None,
            "train.jsonl line 9: undecodable line: 'utf-8' codec can't decode byte 0xe9",
        ),
        (
            "paired",
            {"type": "chat_template.default", "chat_template": "chatml"},
            None,
            "ultrafeedback_train.jsonl line 1, rendered with type 'chat_template.default': the prompt "
            "contains the chosen answer",
        ),
    ],
    ids=[
        "paired-train-all-too-long",
        "unpaired-train-one-label",
        "paired-eval-empty",
        "unpaired-eval-one-label",
        "paired-train-not-utf8",
        "paired-answer-in-the-prompt",
    ],
)
def test_unusable_data_stops_the_real_entry_point_with_its_message(
    tmp_path, tiny_model, mode, train_rows, test_rows, message
):
    """Through ``python -m axolotl.cli.train``: exit code 1, the message, no traceback, no output written."""
    changes: dict = {"max_steps": 2}
    if test_rows is not None:
        changes.update(eval_steps=1, eval_strategy="steps")
    config = make_config(tmp_path, mode, tiny_model, **changes)
    cfg = yaml.safe_load(config.read_text())
    if "type" in train_rows:  # UltraFeedback's full conversations, read by a type that takes the prompt
        cfg["datasets"][0].update(path=str(ROOT / "docs/ultrafeedback_train.jsonl"), type=train_rows["type"])
        cfg["chat_template"] = train_rows["chat_template"]
    else:
        cfg["datasets"][0]["path"] = rows_file(tmp_path, "train", mode, **train_rows)
    if test_rows is None:
        cfg.pop("test_datasets", None)
    else:
        cfg["test_datasets"][0]["path"] = rows_file(tmp_path, "test", mode, **test_rows)
    config.write_text(yaml.safe_dump(cfg))
    done = train(config)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert message in " ".join(output.split()), output[-3000:]
    assert "Traceback" not in output
    assert not (tmp_path / "out/checkpoint-1").exists()


def test_training_refuses_a_type_of_the_other_family_as_validate_does(tmp_path):
    path = rows_file(tmp_path, "train", "paired", 4)
    dataset = DictDefault(path=path, ds_type="json", split="train", type="chat_template.default")
    with pytest.raises(SystemExit) as stop:
        check_source_files(DictDefault({"aot_mode": "unpaired", "datasets": [dataset]}))
    assert str(stop.value).startswith(
        "axolotl-aot: datasets[0].type: 'chat_template.default' is a paired (DPO) dataset type; "
        "rl: aot_unpaired needs a KTO type"
    ), stop.value
