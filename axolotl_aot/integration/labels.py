"""The ``label`` of an unpaired row (``rl: aot_unpaired``): the one parser, and the both-labels check.

Files write labels as booleans, as 0/1, or as the strings "true"/"false" (a spreadsheet's export;
a CSV file's cells are all text). Python's ``bool("false")`` is True, so every reader of a label
goes through ``parse_label``: ``aot-cli validate`` on rendered rows, the plugin's data checks when training
loads the data, the trainer (its datasets, so the collator and the sampler read booleans) and
``aot-cli report``. Anything else is refused, naming the row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing datasets costs seconds: aot-cli checks its paths before
    from datasets import Dataset

ACCEPTED = 'true/false: booleans, 0/1, or the strings "true"/"false" (any case), "1"/"0"'
# A CSV cell is text: "1" is what a 0/1 column of a CSV file reads as, row by row.
STRINGS = {"true": True, "false": False, "1": True, "0": False}


def parse_label(value: Any) -> bool:
    """``value`` as a label; ``ValueError`` saying what a label may be otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in STRINGS:
        return STRINGS[value.strip().lower()]
    raise ValueError(f"label {value!r} is not a label; a label is {ACCEPTED}")


def parsed_labels(values: Iterable[Any], what: str) -> list[bool]:
    """Every label of ``what`` parsed; the first that is none names its 1-based row."""
    labels = []
    for number, value in enumerate(values, start=1):
        try:
            labels.append(parse_label(value))
        except ValueError as error:
            raise ValueError(f"{what}, row {number}: {error}") from None
    return labels


def with_bool_labels(dataset: Dataset, what: str) -> Dataset:
    """``dataset`` with its ``label`` column parsed into booleans (as is when it already holds them)."""
    if "label" not in dataset.column_names or getattr(dataset.features["label"], "dtype", None) == "bool":
        return dataset
    labels = parsed_labels(dataset["label"], what)
    return dataset.remove_columns("label").add_column("label", labels)


def check_both_labels(labels: Iterable[Any], what: str = "the training set") -> None:
    """Unpaired AOT needs samples of both labels in ``what``; say which is missing and what to do.

    Counts the labels as training reads them (``parse_label``). The one check of it: the plugin's
    data checks, the trainers, the sampler and ``aot-cli report``.
    """
    values = parsed_labels(labels, what)
    n_pos = sum(values)
    n_neg = len(values) - n_pos
    if n_pos and n_neg:
        return
    missing = "label=False (undesirable)" if n_pos else "label=True (desirable)"
    raise ValueError(
        f"rl: aot_unpaired needs samples of both labels, but {what} has {n_pos} with label=True "
        f"and {n_neg} with label=False: add {missing} rows (unpairing a paired dataset gives one of "
        "each per pair), or use rl: aot for paired data"
    )
