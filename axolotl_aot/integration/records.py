"""Stream the rows of a dataset source one at a time, keeping the ones that cannot be read.

Sources: local ``.jsonl``, ``.json`` (either gzipped), ``.parquet`` and ``.csv`` files, a
``datasets.save_to_disk`` folder, or a hub dataset name (when online). A UTF-8 byte-order
mark, as some editors and Excel write, is skipped. A JSON Lines line
that does not decode is yielded as a ``Record`` with its error and raw text, so that
callers can account for it instead of failing the whole file or skipping it silently.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# Each file type a local source can be, and the ``datasets`` builder that loads it (axolotl's ``ds_type``).
SUFFIX_TYPES = {
    ".jsonl": "json",
    ".json": "json",
    ".jsonl.gz": "json",
    ".json.gz": "json",
    ".parquet": "parquet",
    ".csv": "csv",
}
FILE_SUFFIXES = tuple(SUFFIX_TYPES)
BOM = "\ufeff".encode()


@dataclass(frozen=True)
class Record:
    """Row ``index`` (0-based) of a source: ``row`` if it decoded, else ``error`` and ``raw``.

    ``line`` is where a user finds it: the 1-based line of a JSON Lines or CSV file (blank lines
    and a CSV header counted, as an editor counts them), else the 1-based row (``place`` says which).
    """

    index: int
    row: dict[str, Any] | None
    error: str | None = None
    raw: str | None = None
    line: int | None = None

    @property
    def place(self) -> str:
        """``line N`` or ``row N``, 1-based, for messages."""
        return f"line {self.line}" if self.line is not None else f"row {self.index + 1}"


def is_local(source: str | Path) -> bool:
    """Whether ``source`` names a local file or folder (existing or not) rather than a hub dataset."""
    text = str(source)
    return Path(text).exists() or text.startswith((".", "/", "~")) or text.endswith(FILE_SUFFIXES)


def file_suffix(path: Path) -> str:
    """The suffix that tells a file's type: ``.jsonl.gz`` for a gzipped file, else the last one."""
    return "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix


def iter_records(source: str | Path, split: str | None = None) -> Iterator[Record]:
    """Yield every row of ``source`` in order; raise ``FileNotFoundError``/``ValueError`` if unusable."""
    path = Path(source).expanduser()
    if not is_local(source):
        yield from _hub_records(str(source), split)
        return
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    suffix = file_suffix(path)
    if path.is_dir():
        yield from _disk_records(path, split)
    elif suffix in (".jsonl", ".jsonl.gz") or (suffix in (".json", ".json.gz") and not _is_json_array(path)):
        yield from _jsonl_records(path)
    elif suffix in (".json", ".json.gz"):
        with _open_text(path) as file:
            for index, row in enumerate(json.load(file)):
                yield _checked(index, row)
    elif suffix == ".parquet":
        yield from _parquet_records(path)
    elif suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.DictReader(file)
            start = 2  # the line after the header, where the first row starts
            for index, row in enumerate(reader):
                yield Record(index, dict(row), line=start)
                start = reader.line_num + 1
    else:
        raise ValueError(
            f"{source}: unsupported file type {path.suffix!r}; use one of {', '.join(FILE_SUFFIXES)}"
        )


def _checked(index: int, row: Any, raw: str | None = None, line: int | None = None) -> Record:
    if isinstance(row, dict):
        return Record(index, row, line=line)
    wrong = f"wrong type: row is {type(row).__name__}, not an object"
    return Record(index, None, wrong, raw or repr(row), line)


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _open_text(path: Path) -> IO[str]:
    """The file as text, gunzipped, with a leading byte-order mark skipped (``utf-8-sig``)."""
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig")


def _is_json_array(path: Path) -> bool:
    with _open_text(path) as file:
        try:
            head = file.read(4096).lstrip()
        except UnicodeDecodeError:
            return False  # a JSON Lines file whose bad lines are reported one by one
    return head.startswith("[")


def _jsonl_records(path: Path) -> Iterator[Record]:
    with _open_binary(path) as file:
        index = 0
        for number, line in enumerate(file):
            if number == 0:
                line = line.removeprefix(BOM)
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
                row = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raw = line.decode("utf-8", "replace").rstrip("\n")
                yield Record(index, None, f"undecodable line: {err}", raw, number + 1)
            else:
                yield _checked(index, row, text.rstrip("\n"), number + 1)
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
