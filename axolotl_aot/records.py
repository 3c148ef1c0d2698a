"""Stream the rows of a dataset source one at a time, keeping the ones that cannot be read.

Sources: local ``.jsonl``, ``.json``, ``.parquet`` and ``.csv`` files, a
``datasets.save_to_disk`` folder, or a hub dataset name (when online). A JSON Lines line
that does not decode is yielded as a ``Record`` with its error and raw text, so that
callers can account for it instead of failing the whole file or skipping it silently.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


@dataclass(frozen=True)
class Record:
    """Row ``index`` (0-based) of a source: ``row`` if it decoded, else ``error`` and ``raw``."""

    index: int
    row: dict[str, Any] | None
    error: str | None = None
    raw: str | None = None


def is_local(source: str | Path) -> bool:
    """Whether ``source`` names a local file or folder (existing or not) rather than a hub dataset."""
    text = str(source)
    return Path(text).exists() or text.startswith((".", "/", "~")) or text.endswith(FILE_SUFFIXES)


def iter_records(source: str | Path, split: str | None = None) -> Iterator[Record]:
    """Yield every row of ``source`` in order; raise ``FileNotFoundError``/``ValueError`` if unusable."""
    path = Path(source).expanduser()
    if not is_local(source):
        yield from _hub_records(str(source), split)
        return
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if path.is_dir():
        yield from _disk_records(path, split)
    elif path.suffix == ".jsonl" or (path.suffix == ".json" and not _is_json_array(path)):
        yield from _jsonl_records(path)
    elif path.suffix == ".json":
        with path.open(encoding="utf-8") as file:
            for index, row in enumerate(json.load(file)):
                yield _checked(index, row)
    elif path.suffix == ".parquet":
        yield from _parquet_records(path)
    elif path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as file:
            for index, row in enumerate(csv.DictReader(file)):
                yield Record(index, dict(row))
    else:
        raise ValueError(
            f"{source}: unsupported file type {path.suffix!r}; use one of {', '.join(FILE_SUFFIXES)}"
        )


def _checked(index: int, row: Any, raw: str | None = None) -> Record:
    if isinstance(row, dict):
        return Record(index, row)
    return Record(index, None, f"wrong type: row is {type(row).__name__}, not an object", raw or repr(row))


def _is_json_array(path: Path) -> bool:
    with path.open(encoding="utf-8") as file:
        head = file.read(4096).lstrip()
    return head.startswith("[")


def _jsonl_records(path: Path) -> Iterator[Record]:
    with path.open("rb") as file:
        index = 0
        for line in file:
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
                row = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                yield Record(
                    index, None, f"undecodable line: {err}", line.decode("utf-8", "replace").rstrip("\n")
                )
            else:
                yield _checked(index, row, text.rstrip("\n"))
            index += 1


def _parquet_records(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield Record(index, row)
            index += 1


def _disk_records(path: Path, split: str | None) -> Iterator[Record]:
    from datasets import DatasetDict, load_from_disk

    dataset = load_from_disk(str(path))
    if isinstance(dataset, DatasetDict):
        dataset = dataset[_pick_split(list(dataset), split, path)]
    for index, row in enumerate(dataset):
        yield Record(index, row)


def _hub_records(name: str, split: str | None) -> Iterator[Record]:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ValueError(f"{name}: a hub dataset, but HF_HUB_OFFLINE=1; download it or unset HF_HUB_OFFLINE")
    from datasets import IterableDatasetDict, load_dataset

    dataset = load_dataset(name, split=split, streaming=True)
    if isinstance(dataset, IterableDatasetDict):
        dataset = dataset[_pick_split(list(dataset), split, name)]
    for index, row in enumerate(dataset):
        yield Record(index, row)


def _pick_split(splits: list[str], split: str | None, source: object) -> str:
    if split is not None and split not in splits:
        raise ValueError(f"{source}: no split {split!r}; it has {', '.join(splits)}")
    if split is None and len(splits) > 1:
        raise ValueError(f"{source} has splits {', '.join(splits)}; choose one with --split")
    return split or splits[0]
