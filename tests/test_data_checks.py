"""Prepared datasets the AOT trainers cannot use are refused with the cause and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from axolotl.utils.dict import DictDefault
from datasets import Dataset

from axolotl_aot.data_checks import check_prepared_datasets

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
