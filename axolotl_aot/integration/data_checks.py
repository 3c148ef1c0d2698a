"""What the AOT trainers need of the prepared datasets, checked before a trainer is built.

Axolotl's preference-data path drops rows longer than ``sequence_len`` with a warning, and
TRL's trainer constructor then fails on an empty set with a bare ``StopIteration``. These
checks run on axolotl's prepared datasets (``AOTPlugin.load_datasets``) and say what is
empty or one-sided, how many source rows it came from, and which keys fix it.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from axolotl_aot.integration import compat
from axolotl_aot.integration.modes import BY_NAME
from axolotl_aot.integration.sampler import check_both_labels


def check_prepared_datasets(cfg: Any, train: Dataset, evaluation: Dataset | None) -> None:
    """Raise ``ValueError`` naming the problem and the fix for an empty training or evaluation
    set, or (``rl: aot_unpaired``) a training or evaluation set with one label only."""
    rl = BY_NAME[cfg.aot_mode].rl
    if len(train) == 0:
        raise ValueError(f"rl: {rl}: the training set is empty. {_why_empty(cfg, cfg.datasets, 'datasets')}")
    if evaluation is not None and len(evaluation) == 0:
        source = "test_datasets" if cfg.test_datasets else "val_set_size"
        why = (
            _why_empty(cfg, cfg.test_datasets, source) if cfg.test_datasets else "val_set_size gives 0 rows."
        )
        raise ValueError(
            f"rl: {rl}: the evaluation set is empty. {why} Or remove {source} to train without evaluation."
        )
    if not BY_NAME[cfg.aot_mode].paired:
        for name, dataset in (("training", train), ("evaluation", evaluation)):
            if dataset is not None:
                check_both_labels(dataset["label"], f"the {name} set")


def _source_rows(cfg: Any, config: Any) -> int:
    """The rows of one dataset entry before axolotl's formatting and filtering."""
    try:
        return len(compat.load_source(config, cfg.hf_use_auth_token))
    except StopIteration:  # `datasets` infers a JSON file's columns from its first row
        return 0


def _why_empty(cfg: Any, dataset_configs: list[Any], key: str) -> str:
    """How many source rows ``key`` has, and the filter that dropped them all."""
    rows = sum(_source_rows(cfg, config) for config in compat.dataset_entries(dataset_configs))
    if rows == 0:
        return f"The files of {key} hold no rows: point {key} at data."
    strategy = cfg.excess_length_strategy or "drop"
    dropped = "longer than" if strategy == "drop" else "whose prompt alone is longer than"
    return (
        f"All {rows} rows of {key} were dropped by axolotl's length filter (excess_length_strategy: "
        f"{strategy} drops every row {dropped} sequence_len: {cfg.sequence_len} tokens). Raise "
        "sequence_len"
        + (
            ", or set excess_length_strategy: truncate to keep rows whose prompt fits."
            if strategy == "drop"
            else "."
        )
    )
