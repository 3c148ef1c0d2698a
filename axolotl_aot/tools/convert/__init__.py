"""Paired preference data to the unpaired (prompt, completion, label) form: ``aot-cli convert-dataset``.

Every pair becomes a positive row (its chosen answer) and a negative row (its rejected
answer) sharing a ``pair_id``; chat inputs keep message lists. Input layouts, detected
per row unless forced (``rows``):

- ``prompt``: ``prompt`` (or ``question``) with ``chosen``/``rejected`` strings, optional ``system``;
- ``chat``: ``chosen``/``rejected`` message lists holding the prompt turns (UltraFeedback
  binarized style), or an explicit message-list ``prompt``; the prompt is the shared turns
  (``trl.extract_prompt``);
- ``hh``: full "Human:/Assistant:" transcripts; the prompt is the shared text up to and
  including the last ``Assistant:`` before the answers differ.

Nothing is lost silently (``stats``): each input row is converted or dropped with a reason, and
the accounting adds up; a destination that would overwrite the source, the rejects or a folder
is refused before anything is read, and a conversion that yields no pair writes nothing and
says why. The output streams to a file renamed into place at the end (``output``), so an
interrupted run leaves no partial file; memory stays bounded (8 bytes of offset per output row,
plus a hash per row with ``dedupe``).

A file mixing chat rows with string rows is written all as chat, since one column cannot
hold both: a ``prompt`` row's prompt becomes a user turn after its ``system`` turn, an ``hh``
prompt its Human/Assistant turns, an answer one assistant turn.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from array import array
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import yaml

from axolotl_aot.integration.records import Record, iter_records
from axolotl_aot.tools.convert.output import check_destinations, finalize, scratch
from axolotl_aot.tools.convert.rows import LAYOUTS, Dropped, Layout, encoded, unpair
from axolotl_aot.tools.convert.stats import ConversionStats

__all__ = ["LAYOUTS", "ConversionStats", "Dropped", "Layout", "convert_dataset", "datasets_yaml", "unpair"]

PARQUET_BATCH = 8192  # rows held in memory per Parquet write


def convert_dataset(
    src: str | Path,
    dst: str | Path,
    *,
    layout: Layout = "auto",
    split: str | None = None,
    seed: int | None = None,
    dedupe: bool = False,
    balance: bool = False,
    limit: int | None = None,
    rejects: str | Path | None = None,
    strict: bool = False,
    overwrite: bool = False,
    columns: dict[str, str] | None = None,
    on_row: Callable[[int], None] | None = None,
) -> ConversionStats:
    """Write the unpaired form of ``src`` to ``dst`` (``.jsonl`` or ``.parquet``); see the module doc.

    ``seed`` shuffles the output rows, ``dedupe`` keeps the first of identical (prompt,
    completion, label) rows, ``balance`` randomly drops rows of the larger label until both
    counts match, ``limit`` reads at most that many input rows, ``strict`` writes nothing if
    any row is dropped, ``rejects`` keeps the dropped rows with their reasons as JSON Lines,
    ``columns`` maps a field this reads (``prompt``, ``chosen``, ...) to the source column holding it.
    Raises ``ValueError`` (nothing written) when no pair can be converted.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"--format must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    dst, rejects = Path(dst), Path(rejects) if rejects else None
    check_destinations(src, dst, rejects, overwrite)
    stats = ConversionStats()
    with ExitStack() as cleanup:
        rows_file = cleanup.enter_context(scratch(dst.parent))
        rejects_file = cleanup.enter_context(scratch(rejects.parent)) if rejects else None
        records = iter_records(src, split)
        if columns:
            records = _renamed(records, columns)
        offsets, labels = _convert_rows(
            records, rows_file, rejects_file, stats, layout, dedupe, limit, on_row
        )
        if not stats.pairs_converted:
            raise ValueError(stats.why_nothing())
        if strict and stats.rows_dropped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in stats.dropped.most_common())
            raise ValueError(
                f"--strict: {stats.rows_dropped} of {stats.rows_read} rows would be dropped ({reasons})"
            )
        order = _output_order(labels, stats, seed, balance)
        finalize(rows_file, offsets, order, dst, as_chat=stats.as_chat, parquet_batch=PARQUET_BATCH)
        if rejects_file is not None:
            rejects_file.flush()
            os.replace(rejects_file.name, rejects)
    return stats


def datasets_yaml(dst: str | Path, dataset_type: str | None) -> str:
    """The ``datasets:`` YAML entry that trains ``dst`` as written (no ``type:`` when None)."""
    entry = {"path": str(dst), "type": dataset_type, "split": "train"}
    if dataset_type is None:
        del entry["type"]
    return yaml.safe_dump({"datasets": [entry]}, sort_keys=False).rstrip()


def _renamed(records: Iterator[Record], columns: dict[str, str]) -> Iterator[Record]:
    """Rows with the source column of each field of ``columns`` (field -> column) under the field's name,
    replacing a column already named like the field."""
    for record in records:
        if record.row is None:
            yield record
            continue
        row = {k: v for k, v in record.row.items() if k not in columns}
        row.update({name: record.row[column] for name, column in columns.items() if column in record.row})
        yield dataclasses.replace(record, row=row)


def _convert_rows(
    records: Iterator[Record],
    out: IO[str],
    rejects: IO[str] | None,
    stats: ConversionStats,
    layout: Layout,
    dedupe: bool,
    limit: int | None,
    on_row: Callable[[int], None] | None,
) -> tuple[array, bytearray]:
    """Write each pair's two rows to ``out`` as converted; the offset and label of each row written."""
    offsets, labels, seen = array("q"), bytearray(), set()
    for record in records:
        if limit is not None and stats.rows_read >= limit:
            stats.limit_reached = True
            break
        stats.rows_read += 1
        if on_row is not None:
            on_row(stats.rows_read)
        try:
            if record.row is None:
                raise Dropped(record.error or "undecodable line")
            found, prompt, chosen, rejected, extra = unpair(record.row, layout)
            rows = [
                {"prompt": prompt, "completion": completion, "label": label, "pair_id": record.index, **extra}
                for completion, label in ((chosen, True), (rejected, False))
            ]
            lines = [encoded(row) for row in rows]
        except Dropped as reason:
            stats.drop(record, str(reason))
            if rejects is not None:
                _write_reject(rejects, record, str(reason))
            continue
        stats.pairs_converted += 1
        stats.layouts[found] += 1
        for row, line in zip(rows, lines, strict=True):
            if dedupe:
                key = hashlib.blake2b(
                    json.dumps([row["prompt"], row["completion"], row["label"]]).encode(), digest_size=8
                ).digest()
                if key in seen:
                    stats.duplicates_removed += 1
                    continue
                seen.add(key)
            offsets.append(out.tell())
            labels.append(row["label"])
            out.write(line)
    return offsets, labels


def _write_reject(rejects: IO[str], record: Record, reason: str) -> None:
    """A dropped row as a JSON line of the rejects file: its index, the reason and what was read."""
    kept = record.row if record.row is not None else record.raw
    place = {"line": record.line} if record.line is not None else {"row": record.index + 1}
    rejects.write(json.dumps({**place, "reason": reason, "data": kept}, default=str) + "\n")


def _output_order(
    labels: bytearray, stats: ConversionStats, seed: int | None, balance: bool
) -> list[int] | None:
    """Indices of the rows to write, in order; None means all rows as converted."""
    if not balance and seed is None:
        stats.count_written(labels)
        return None
    rng = random.Random(seed if seed is not None else 0)
    keep = list(range(len(labels)))
    if balance:
        positives = [i for i in keep if labels[i]]
        negatives = [i for i in keep if not labels[i]]
        larger, smaller = (
            (positives, negatives) if len(positives) > len(negatives) else (negatives, positives)
        )
        removed = set(rng.sample(larger, len(larger) - len(smaller)))
        stats.balanced_away = len(removed)
        keep = [i for i in keep if i not in removed]
    if seed is not None:
        rng.shuffle(keep)
    stats.count_written([labels[i] for i in keep])
    return keep
