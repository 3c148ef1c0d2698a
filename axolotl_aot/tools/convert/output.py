"""Where a conversion writes: destinations checked before a row is read, and files that appear only
when complete.

Rows stream to a file beside the destination, renamed into place at the end, so an interrupted
run leaves no partial output and the rename is atomic. The file is created as any new file is
(``open``'s mode 0o666 less the process umask), so the published output has the mode the umask
gives, and the umask is never changed.
"""

from __future__ import annotations

import json
import os
import uuid
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from axolotl_aot.tools.convert.rows import chat_row

OUTPUT_SUFFIXES = (".jsonl", ".parquet")


def check_destinations(src: str | Path, dst: Path, rejects: Path | None, overwrite: bool) -> None:
    """Refuse, before reading a row, every destination that would lose data or fail at the end."""
    if dst.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(
            f"{dst}: the output format follows its extension: use {' or '.join(OUTPUT_SUFFIXES)}"
        )
    if rejects is not None and _same_file(rejects, dst):
        raise ValueError(f"--rejects {rejects} is the output file too: give the dropped rows another file")
    for target, name in ((dst, "DST"), (rejects, "--rejects")):
        if target is None:
            continue
        if _same_file(target, Path(str(src)).expanduser()):
            raise ValueError(
                f"{name} {target} is the source file: the conversion would replace its own input; "
                "write to another file"
            )
        if target.is_dir():
            raise ValueError(
                f"{name} {target} is a folder: give a file name, e.g. {target / 'unpaired.jsonl'}"
            )
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(
                f"cannot create the folder {target.parent} for {target}: {err.strerror or err}"
            ) from None
        if not os.access(target.parent, os.W_OK):
            raise ValueError(f"cannot write to the folder {target.parent}: permission denied")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


@contextmanager
def scratch(folder: Path, suffix: str = ".jsonl") -> Iterator[IO[str]]:
    """A new file in ``folder`` (its destination's, so the final rename is atomic), removed unless
    renamed; ``"x"`` creates it with the umask's mode (``tempfile`` would make it 0600)."""
    path = folder / f".aot-convert-{uuid.uuid4().hex}{suffix}"
    file = open(path, "x+", encoding="utf-8")  # noqa: SIM115 (closed below, before the file is removed)
    try:
        with file:
            yield file
    finally:
        path.unlink(missing_ok=True)


def finalize(
    rows_file: IO[str],
    offsets: array,
    order: list[int] | None,
    dst: Path,
    *,
    as_chat: bool,
    parquet_batch: int,
) -> None:
    """Publish the converted rows of ``rows_file`` (at ``offsets``) to ``dst``: in ``order`` (None: as
    converted), as chat when ``as_chat``, in ``dst``'s format (Parquet in batches of ``parquet_batch``)."""
    rows_file.flush()
    if dst.suffix == ".jsonl" and order is None and not as_chat:
        os.replace(rows_file.name, dst)
        return
    with open(rows_file.name, encoding="utf-8") as source, scratch(dst.parent, dst.suffix) as target:

        def rows() -> Iterator[dict[str, Any]]:
            for line in _lines_in_order(source, offsets, order):
                row = json.loads(line)
                yield chat_row(row) if as_chat else row

        if dst.suffix == ".jsonl":
            for row in rows():
                target.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            _write_parquet(rows, target.name, parquet_batch)
        target.flush()
        os.replace(target.name, dst)


def _lines_in_order(source: IO[str], offsets: array, order: list[int] | None) -> Iterator[str]:
    if order is None:
        source.seek(0)
        yield from source
        return
    for index in order:
        source.seek(offsets[index])
        yield source.readline()


def _write_parquet(rows: Callable[[], Iterator[dict[str, Any]]], path: str, batch: int) -> None:
    """Two passes over ``rows``: one schema for the whole file (a column of any row is in every
    row, null where the row lacks it), then the rows, ``batch`` rows in memory at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pa.unify_schemas(
            [pa.Table.from_pylist(part).schema for part in _batches(rows(), batch)],
            promote_options="permissive",
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(
            f"the rows' columns have types that cannot share one Parquet file ({err}); write .jsonl instead"
        ) from None
    with pq.ParquetWriter(path, schema) as writer:
        for part in _batches(rows(), batch):
            writer.write_table(pa.Table.from_pylist(part, schema=schema))


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
