"""The checks of a config's datasets: each ``type:`` of the mode's family, and the first rows of each
local file rendered by that type into what the mode trains.

A type is axolotl's own row transform (``compat.prompt_strategy``), given the model's tokenizer
when it needs one; the rendered prompt must be text holding the row's user text, each answer
non-empty text.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from axolotl_aot.integration import compat
from axolotl_aot.integration.modes import MODES, Mode
from axolotl_aot.tools.records import Record, is_local, iter_records
from axolotl_aot.tools.validate.report import Report

HEAD_ROWS = 5
# The Python text of a message list, as str() of a list renders it: a type read messages as a string.
MESSAGE_REPR = re.compile(r"""\{\s*['"](role|content)['"]\s*:""")


def _datasets(raw: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    return [
        (section, index, dataset)
        for section in ("datasets", "test_datasets")
        for index, dataset in enumerate(raw.get(section) or [])
        if isinstance(dataset, dict)
    ]


def _transform(family: str, raw: dict[str, Any], section: str, index: int) -> Any:
    """axolotl's own transform for the dataset's ``type:`` in a DPO or KTO family (None: unknown)."""
    dataset_type = raw[section][index].get("type")
    if dataset_type is None:
        return lambda row: row
    name = "user_defined.default" if isinstance(dataset_type, dict) else str(dataset_type)
    view = {**raw, "datasets": raw[section]}  # the strategies read cfg["datasets"][dataset_idx]
    return compat.prompt_strategy(family, name, view, index)


def check_dataset_types(raw: dict[str, Any], mode: Mode, report: Report) -> None:
    """Each ``type:`` must be one of the mode's family (DPO for paired, KTO for unpaired)."""
    other = next(m for m in MODES if m is not mode)
    own = mode.axolotl_rl
    for section, index, dataset in _datasets(raw):
        if dataset.get("type") is None or _transform(own, raw, section, index) is not None:
            continue
        key, name = f"{section}[{index}].type", dataset["type"]
        if _transform(other.axolotl_rl, raw, section, index) is not None:
            wrong = "a paired (DPO)" if other.paired else "an unpaired (KTO)"
            report.add(
                "error",
                key,
                f"{name!r} is {wrong} dataset type; rl: {mode.rl} needs a {own.upper()} type "
                f"(or use rl: {other.rl}, or convert the data with aot-cli convert-dataset)",
            )
        else:
            report.add("error", key, f"{name!r} is not an axolotl {own.upper()} dataset type")


def check_dataset_files(raw: dict[str, Any], mode: Mode, report: Report) -> None:
    """Each local file exists and its first rows render, with its type, into what the mode trains."""
    tokenizer = functools.cache(lambda: _tokenizer(raw))  # loaded once, on first need
    for section, index, dataset in _datasets(raw):
        key, source = f"{section}[{index}]", str(dataset.get("path", ""))
        if not is_local(source):
            report.add("info", f"{key}.path", f"{source}: a hub dataset, not checked (offline)")
            continue
        path = Path(source).expanduser()  # axolotl.cli.train: relative to the current directory
        if not path.exists():
            report.add("error", f"{key}.path", report.missing(source))
            continue
        transform = _transform(mode.axolotl_rl, raw, section, index)
        if transform is None:
            continue  # the type error is already reported
        if isinstance(transform, tuple):
            transform = transform[0]  # (transform, map kwargs)
        try:
            head = list(itertools.islice(iter_records(path, dataset.get("split")), HEAD_ROWS))
        except (OSError, ValueError) as err:
            report.add("error", f"{key}.path", str(err))
            continue
        if "tokenizer" in inspect.signature(transform).parameters:
            if isinstance(tokenizer(), str):
                report.add("info", f"{key}.type", f"rows not rendered: {tokenizer()}")
                continue
            transform = functools.partial(transform, tokenizer=tokenizer())
        _check_rows(head, transform, mode, key, dataset, report)


def _tokenizer(raw: dict[str, Any]) -> Any:
    """The model's tokenizer from a local folder, or why it is not available (a string)."""
    name = raw.get("tokenizer_config") or raw.get("base_model_config") or raw.get("base_model")
    if not isinstance(name, str) or not Path(name).expanduser().exists():
        return (
            f"the type needs the tokenizer of {name!r}, which is not a local folder (not downloaded offline)"
        )
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(Path(name).expanduser()), local_files_only=True)
    except (OSError, ValueError) as err:
        return f"the tokenizer of {name!r} does not load ({err})"


def _check_rows(
    head: list[Record],
    transform: Callable[[dict[str, Any]], dict[str, Any]],
    mode: Mode,
    key: str,
    dataset: dict[str, Any],
    report: Report,
) -> None:
    """Render the first rows with the type; report the first row that would not train as intended."""
    if not head:
        report.add("error", f"{key}.path", f"{dataset['path']}: no rows")
    name = dataset.get("type")
    for record in head:
        where = f"{dataset['path']} row {record.index + 1}"
        if record.row is None:
            report.add("error", f"{key}.path", f"{where}: {record.error}")
            continue
        try:
            row = transform(dict(record.row))
        except KeyError as err:
            report.add(
                "error",
                f"{key}.type",
                f"{where} has no column {err} that type {name!r} reads; "
                f"its columns are {', '.join(record.row)}",
            )
            return
        except Exception as err:  # whatever the type raises, training would raise it too
            report.add("error", f"{key}.type", f"{where}: type {name!r} fails on it: {err}")
            return
        problem = _rendering_problem(record.row, row, mode)
        if problem:
            chat = "" if name == mode.chat_type else f"; for message lists use type: {mode.chat_type}"
            report.add("error", f"{key}.type", f"{where}, rendered with type {name!r}: {problem}{chat}")
            return


def _rendering_problem(source: dict[str, Any], row: dict[str, Any], mode: Mode) -> str | None:
    """What is wrong with one row as the type renders it for training, or None."""
    missing = [column for column in mode.columns if row.get(column) in (None, "")]
    if missing:
        return f"it has no {', '.join(missing)}; rl: {mode.rl} needs {', '.join(mode.columns)}"
    for column in mode.columns:
        value = row[column]
        if column == "label":
            continue
        if not isinstance(value, str):
            return (
                f"{column} is a {type(value).__name__}, not text (training fails: text input must be a str)"
            )
        if MESSAGE_REPR.search(value):
            return f"{column} holds the Python text of a message list: {value[:60]!r}..."
        if not value.strip():
            return f"{column} is empty"
    user = _user_text(source)
    if user and user.strip() not in row["prompt"]:
        return f"the prompt {row['prompt'][:60]!r} does not contain the row's user text {user[:40]!r}"
    chosen = source.get("chosen")
    answer = _user_text({"chosen": chosen}, ("chosen",), "assistant") if isinstance(chosen, list) else None
    if mode.paired and answer and answer.strip() in row["prompt"]:
        return (
            f"the prompt contains the chosen answer {answer[:40]!r}: the type reads the prompt from a column "
            "holding the whole conversation (UltraFeedback's messages)"
        )
    return None


def _user_text(
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
