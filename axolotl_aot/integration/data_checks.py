"""The one home of the data checks: what ``aot-cli validate`` says of a config's data, training says too.

Two stages, each run by both ``aot-cli validate`` and the plugin when training loads the data
(``AOTPlugin.load_datasets``), before the model loads:

- ``source_findings``: every row of a local dataset file is read (a non-UTF-8 or broken line is
  named by file and line), and rendered by the entry's ``type:`` (axolotl's own transform,
  ``compat.prompt_strategy``) into what the mode trains: text prompt and answers, none empty, a
  label that ``labels.parse_label`` reads, the row's user text in the prompt and not its chosen
  answer. A type that needs the tokenizer (a chat template) renders the first ``HEAD_ROWS`` rows
  only: those find a wrong type, and the template is slow on a large file. Validate reports every
  finding; training refuses on the first error and logs the warnings.
- ``check_prepared_datasets``: axolotl's prepared sets (hub datasets too). Axolotl's preference
  path drops rows longer than ``sequence_len`` with a warning, and TRL's trainer constructor then
  fails on an empty set with a bare ``StopIteration``; an unpaired set needs both labels. These
  say what is empty or one-sided, how many source rows it came from, and which keys fix it.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

from datasets import Dataset

from axolotl_aot.integration import compat
from axolotl_aot.integration.labels import check_both_labels, parse_label
from axolotl_aot.integration.modes import BY_NAME, MODES, Mode
from axolotl_aot.integration.records import Record, is_local, iter_records

HEAD_ROWS = 5
# The Python text of a message list, as str() of a list renders it: a type read messages as a string.
MESSAGE_REPR = re.compile(r"""\{\s*['"](role|content)['"]\s*:""")
SECTIONS = ("datasets", "test_datasets")


class Finding(NamedTuple):
    """One thing wrong with a dataset entry: ``key`` is the YAML key's path, e.g. ``datasets[0].type``."""

    severity: Literal["error", "warning", "info"]
    key: str
    message: str


def dataset_entries(cfg: Mapping[str, Any]) -> list[tuple[str, int, Mapping[str, Any]]]:
    """(section, index, entry) of every dataset entry of a raw or loaded config."""
    return [
        (section, index, dataset)
        for section in SECTIONS
        for index, dataset in enumerate(cfg.get(section) or [])
        if isinstance(dataset, Mapping)
    ]


def transform_of(family: str, cfg: Mapping[str, Any], section: str, index: int) -> Any:
    """axolotl's own transform for the entry's ``type:`` in a DPO or KTO family (None: unknown)."""
    dataset_type = cfg[section][index].get("type")
    if dataset_type is None:
        return lambda row: row
    name = "user_defined.default" if isinstance(dataset_type, Mapping) else str(dataset_type)
    view = {**cfg, "datasets": cfg[section]}  # the strategies read cfg["datasets"][dataset_idx]
    return compat.prompt_strategy(family, name, view, index)


def type_findings(cfg: Mapping[str, Any], mode: Mode) -> Iterator[Finding]:
    """Each ``type:`` must be one of the mode's family (DPO for paired, KTO for unpaired)."""
    other = next(m for m in MODES if m is not mode)
    own = mode.axolotl_rl
    for section, index, dataset in dataset_entries(cfg):
        if dataset.get("type") is None or transform_of(own, cfg, section, index) is not None:
            continue
        key, name = f"{section}[{index}].type", dataset["type"]
        if transform_of(other.axolotl_rl, cfg, section, index) is not None:
            wrong = "a paired (DPO)" if other.paired else "an unpaired (KTO)"
            yield Finding(
                "error",
                key,
                f"{name!r} is {wrong} dataset type; rl: {mode.rl} needs a {own.upper()} type "
                f"(or use rl: {other.rl}, or convert the data with aot-cli convert-dataset)",
            )
        else:
            yield Finding("error", key, f"{name!r} is not an axolotl {own.upper()} dataset type")


def source_findings(
    cfg: Mapping[str, Any], section: str, index: int, mode: Mode, tokenizer: Callable[[], Any]
) -> Iterator[Finding]:
    """What is wrong with the rows of one existing local dataset file (see the module docstring).

    ``tokenizer()`` gives the model's tokenizer, or why there is none (a string), when a type needs it.
    """
    dataset = cfg[section][index]
    key, source = f"{section}[{index}]", str(dataset["path"])
    transform = transform_of(mode.axolotl_rl, cfg, section, index)
    if isinstance(transform, tuple):
        transform = transform[0]  # (transform, map kwargs)
    limit = None
    if transform is not None and "tokenizer" in inspect.signature(transform).parameters:
        loaded = tokenizer()
        if isinstance(loaded, str):
            yield Finding("info", f"{key}.type", f"rows not rendered: {loaded}")
            transform = None
        else:
            transform, limit = functools.partial(transform, tokenizer=loaded), HEAD_ROWS
    rows, unreadable, rendering = 0, None, None
    try:
        for record in iter_records(Path(source).expanduser(), dataset.get("split")):
            rows += 1
            if record.row is None:
                unreadable = unreadable or record
            elif rendering is None and transform is not None and (limit is None or record.index < limit):
                rendering = _rendering_finding(record, transform, mode, key, dataset)
    except (OSError, ValueError) as err:
        yield Finding("error", f"{key}.path", str(err))
        return
    if rows == 0:
        yield Finding("error", f"{key}.path", f"{source}: no rows")
    if unreadable is not None:
        yield Finding("error", f"{key}.path", f"{source} {unreadable.place}: {unreadable.error}")
    if rendering is not None:
        yield rendering


def _rendering_finding(
    record: Record, transform: Callable[[dict[str, Any]], dict[str, Any]], mode: Mode, key: str, dataset: Any
) -> Finding | None:
    """The row rendered with the type, and what would not train as intended in it, or None."""
    where, name = f"{dataset['path']} {record.place}", dataset.get("type")
    try:
        row = transform(dict(record.row))
    except KeyError as err:
        return Finding(
            "error",
            f"{key}.type",
            f"{where} has no column {err} that type {name!r} reads; its columns are {', '.join(record.row)}",
        )
    except Exception as err:  # whatever the type raises, training would raise it too
        return Finding("error", f"{key}.type", f"{where}: type {name!r} fails on it: {err}")
    problem = _rendering_problem(record.row, row, mode)
    if problem is None:
        return None
    lists = name != mode.chat_type and any(isinstance(value, list) for value in record.row.values())
    chat = f"; for message lists use type: {mode.chat_type}" if lists else ""
    rendered = f"rendered with type {name!r}" if name is not None else "read as is (no type:)"
    return Finding("error", f"{key}.type", f"{where}, {rendered}: {problem}{chat}")


def _rendering_problem(source: dict[str, Any], row: dict[str, Any], mode: Mode) -> str | None:
    """What is wrong with one row as the type renders it for training, or None."""
    missing = [column for column in mode.columns if row.get(column) in (None, "")]
    if missing:
        return f"it has no {', '.join(missing)}; rl: {mode.rl} needs {', '.join(mode.columns)}"
    for column in mode.columns:
        value = row[column]
        if column == "label":
            try:
                parse_label(value)
            except ValueError as error:
                return str(error)
            continue
        if not isinstance(value, str):
            return (
                f"{column} is a {type(value).__name__}, not text (training fails: text input must be a str)"
            )
        if MESSAGE_REPR.search(value):
            return f"{column} holds the Python text of a message list: {value[:60]!r}..."
        if not value.strip():
            return f"{column} is empty"
    user = user_text(source)
    if user and user.strip() not in row["prompt"]:
        return f"the prompt {row['prompt'][:60]!r} does not contain the row's user text {user[:40]!r}"
    chosen = source.get("chosen")
    answer = user_text({"chosen": chosen}, ("chosen",), "assistant") if isinstance(chosen, list) else None
    if mode.paired and answer and answer.strip() in row["prompt"]:
        return (
            f"the prompt contains the chosen answer {answer[:40]!r}: the type reads the prompt from a column "
            "holding the whole conversation (UltraFeedback's messages)"
        )
    return None


def user_text(
    row: dict[str, Any], columns: tuple[str, ...] = ("prompt", "question", "instruction"), role: str = "user"
) -> str | None:
    """The last ``role`` turn of a source row: the first of ``columns`` that is text or a message list."""
    for column in columns:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list):
            turns = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == role]
            if turns and isinstance(turns[-1], str):
                return turns[-1]
    return None


def check_source_datasets(cfg: Any, mode: Mode, tokenizer: Callable[[], Any]) -> list[Finding]:
    """``type_findings``, and ``source_findings`` of every local dataset file of a loaded config that
    exists (axolotl itself reports a missing one, and a hub dataset is checked once prepared)."""
    return [
        *type_findings(cfg, mode),
        *(
            finding
            for section, index, dataset in dataset_entries(cfg)
            if is_local(str(dataset.get("path", ""))) and Path(str(dataset["path"])).expanduser().exists()
            for finding in source_findings(cfg, section, index, mode, tokenizer)
        ),
    ]


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
