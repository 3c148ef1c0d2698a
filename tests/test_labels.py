"""One parser for the unpaired ``label``: booleans, 0/1 and "true"/"false" in any case; nothing else."""

from __future__ import annotations

import pytest
from datasets import Dataset

from axolotl_aot.integration.labels import check_both_labels, parse_label, parsed_labels, with_bool_labels
from axolotl_aot.integration.sampler import LabelMixingSampler


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        ("FALSE", False),
        (" True\n", True),
        ("0", False),  # a CSV file's 0/1 column, read row by row
    ],
)
def test_what_a_label_may_be(value, label):
    assert parse_label(value) is label


@pytest.mark.parametrize("value", ["yes", "", "2", 2, -1, 0.0, None, [True]])
def test_anything_else_is_refused_saying_what_a_label_is(value):
    with pytest.raises(
        ValueError, match=r"is not a label; a label is true/false: booleans, 0/1, or the strings"
    ):
        parse_label(value)


def test_the_refused_label_names_its_row_from_1():
    with pytest.raises(ValueError, match=r"^the training set, row 3: label 'maybe' is not a label"):
        parsed_labels([True, "false", "maybe", True], "the training set")


def test_string_labels_are_counted_as_training_reads_them():
    check_both_labels(["true", "false", "False"])  # bool("false") would have made all three True
    with pytest.raises(ValueError, match="the evaluation set has 0 with label=True and 2 with label=False"):
        check_both_labels(["false", 0], "the evaluation set")


def test_a_dataset_of_string_labels_gets_boolean_labels_and_a_boolean_one_is_kept():
    strings = Dataset.from_dict({"prompt": ["a", "b", "c"], "label": ["TRUE", "false", "true"]})
    parsed = with_bool_labels(strings, "the training set")
    assert parsed["label"] == [True, False, True] and parsed.features["label"].dtype == "bool"
    assert parsed["prompt"] == ["a", "b", "c"]
    booleans = Dataset.from_dict({"label": [True, False]})
    assert with_bool_labels(booleans, "the training set") is booleans


def test_the_sampler_reads_string_labels():
    sampler = LabelMixingSampler(["true", "false", "false", "true"], batch_size=2, seed=0)
    assert sorted(sampler.positives.tolist()) == [0, 3] and sorted(sampler.negatives.tolist()) == [1, 2]
