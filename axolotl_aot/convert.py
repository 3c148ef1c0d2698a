"""Paired preference data to the unpaired (prompt, completion, label) form: ``aot-cli convert-dataset``.

Every pair becomes a positive row (its chosen answer) and a negative row (its rejected
answer) sharing a ``pair_id``; chat inputs keep message lists. Input layouts, detected
per row unless forced:

- ``prompt``: ``prompt`` (or ``question``) with ``chosen``/``rejected`` strings, optional ``system``;
- ``chat``: ``chosen``/``rejected`` message lists holding the prompt turns (UltraFeedback
  binarized style), or an explicit message-list ``prompt``; the prompt is the shared turns
  (``trl.extract_prompt``);
- ``hh``: full "Human:/Assistant:" transcripts; the prompt is the shared text up to and
  including the last ``Assistant:`` before the answers differ.

Nothing is lost silently: each input row is converted or dropped with a reason, and the
accounting adds up. The output streams to a temporary file renamed into place at the end,
so an interrupted run leaves no partial file; memory stays bounded (8 bytes of offset per
output row, plus a hash per row with ``dedupe``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from trl.data_utils import extract_prompt

from axolotl_aot.records import Record, iter_records

Layout = Literal["auto", "prompt", "chat", "hh"]
LAYOUTS: tuple[str, ...] = ("auto", "prompt", "chat", "hh")
OUTPUT_SUFFIXES = (".jsonl", ".parquet")
ASSISTANT = "\n\nAssistant:"
PROMPT_FIELDS = ("prompt", "question")
PARQUET_BATCH = 8192


class Dropped(Exception):
    """An input row that cannot become a pair, with the reason shown in the accounting."""


@dataclass
class ConversionStats:
    rows_read: int = 0
    pairs_converted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    duplicates_removed: int = 0
    balanced_away: int = 0
    positives_written: int = 0
    negatives_written: int = 0
    layouts: Counter[str] = field(default_factory=Counter)
    limit_reached: bool = False

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def rows_written(self) -> int:
        return self.positives_written + self.negatives_written

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "pairs_converted": self.pairs_converted,
            "rows_dropped": self.rows_dropped,
            "dropped": dict(self.dropped),
            "duplicates_removed": self.duplicates_removed,
            "balanced_away": self.balanced_away,
            "rows_written": self.rows_written,
            "positives_written": self.positives_written,
            "negatives_written": self.negatives_written,
            "layouts": dict(self.layouts),
            "limit_reached": self.limit_reached,
        }


def unpair(row: dict[str, Any], layout: Layout = "auto") -> tuple[str, Any, Any, Any, dict[str, Any]]:
    """(layout, prompt, chosen, rejected, extra columns) of one paired row, or raise ``Dropped``."""
    for name in ("chosen", "rejected"):
        if row.get(name) is None:
            raise Dropped(f"missing field: {name}")
    chosen, rejected = row["chosen"], row["rejected"]
    kinds = {_kind(chosen), _kind(rejected)}
    if kinds == {"messages"}:
        found = "chat"
    elif kinds == {"text"}:
        found = "prompt" if any(isinstance(row.get(f), str) for f in PROMPT_FIELDS) else "hh"
    else:
        raise Dropped(f"wrong type: chosen is {_describe(chosen)}, rejected is {_describe(rejected)}")
    if layout not in ("auto", found):
        raise Dropped(f"wrong type: a {found} row, but --format {layout}")
    prompt, chosen, rejected = {"chat": _chat, "prompt": _prompt, "hh": _transcript}[found](row)
    if _empty(chosen) or _empty(rejected):
        raise Dropped("empty completion")
    if chosen == rejected:
        raise Dropped("chosen identical to rejected")
    if _empty(prompt):
        raise Dropped("empty prompt")
    extra = {"system": row["system"]} if isinstance(row.get("system"), str) and row["system"] else {}
    return found, prompt, chosen, rejected, extra


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value
        )
    ):
        return "messages"
    return "other"


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list that is not {role, content} messages" if value else "an empty list"
    return type(value).__name__


def _empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return not value or all(not message["content"].strip() for message in value)


def _prompt(row: dict[str, Any]) -> tuple[str, str, str]:
    prompt = next(row[f] for f in PROMPT_FIELDS if isinstance(row.get(f), str))
    return prompt, row["chosen"], row["rejected"]


def _chat(row: dict[str, Any]) -> tuple[list, list, list]:
    prompt = row.get("prompt")
    if _kind(prompt) == "messages" and row["chosen"][: len(prompt)] != prompt:
        return prompt, row["chosen"], row["rejected"]  # explicit prompt, answers alone
    shared = extract_prompt({"chosen": row["chosen"], "rejected": row["rejected"]})
    return shared["prompt"], shared["chosen"], shared["rejected"]


def _transcript(row: dict[str, Any]) -> tuple[str, str, str]:
    chosen, rejected = row["chosen"], row["rejected"]
    shared = extract_prompt({"chosen": chosen, "rejected": rejected})["prompt"]
    cut = shared.rfind(ASSISTANT)
    if cut < 0:
        raise Dropped(
            "missing field: prompt (no prompt or question column, and not a Human/Assistant transcript)"
        )
    cut += len(ASSISTANT)
    return chosen[:cut], chosen[cut:].lstrip(), rejected[cut:].lstrip()


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
    on_row: Callable[[int], None] | None = None,
) -> ConversionStats:
    """Write the unpaired form of ``src`` to ``dst`` (``.jsonl`` or ``.parquet``); see the module doc.

    ``seed`` shuffles the output rows, ``dedupe`` keeps the first of identical (prompt,
    completion, label) rows, ``balance`` randomly drops rows of the larger label until both
    counts match, ``limit`` reads at most that many input rows, ``strict`` writes nothing if
    any row is dropped, ``rejects`` keeps the dropped rows with their reasons as JSON Lines.
    """
    dst, rejects = Path(dst), Path(rejects) if rejects else None
    if dst.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(
            f"{dst}: the output format follows its extension: use {' or '.join(OUTPUT_SUFFIXES)}"
        )
    if layout not in LAYOUTS:
        raise ValueError(f"--format must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    for target in filter(None, (dst, rejects)):
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    stats = ConversionStats()
    with ExitStack() as cleanup:
        rows_file = cleanup.enter_context(_scratch(dst.parent))
        rejects_file = cleanup.enter_context(_scratch(rejects.parent)) if rejects else None
        offsets, labels = _convert_rows(
            iter_records(src, split), rows_file, rejects_file, stats, layout, dedupe, limit, on_row
        )
        if strict and stats.rows_dropped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in stats.dropped.most_common())
            raise ValueError(
                f"--strict: {stats.rows_dropped} of {stats.rows_read} rows would be dropped ({reasons})"
            )
        order = _output_order(labels, stats, seed, balance)
        rows_file.flush()
        _finalize(rows_file, offsets, order, dst)
        if rejects_file is not None:
            rejects_file.flush()
            os.replace(rejects_file.name, rejects)
    return stats


def _convert_rows(
    records: Iterator[Record],
    out: Any,
    rejects: Any,
    stats: ConversionStats,
    layout: Layout,
    dedupe: bool,
    limit: int | None,
    on_row: Callable[[int], None] | None,
) -> tuple[array, bytearray]:
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
        except Dropped as reason:
            # Decoder messages differ per line; the rejects file keeps them, the accounting groups them.
            stats.dropped["undecodable line" if str(reason).startswith("undecodable") else str(reason)] += 1
            if rejects is not None:
                kept = record.row if record.row is not None else record.raw
                rejects.write(
                    json.dumps({"row": record.index, "reason": str(reason), "data": kept}, default=str)
                )
                rejects.write("\n")
            continue
        stats.pairs_converted += 1
        stats.layouts[found] += 1
        for completion, label in ((chosen, True), (rejected, False)):
            row = {
                "prompt": prompt,
                "completion": completion,
                "label": label,
                "pair_id": record.index,
                **extra,
            }
            if dedupe:
                key = hashlib.blake2b(
                    json.dumps([prompt, completion, label]).encode(), digest_size=8
                ).digest()
                if key in seen:
                    stats.duplicates_removed += 1
                    continue
                seen.add(key)
            offsets.append(out.tell())
            labels.append(label)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return offsets, labels


def _output_order(
    labels: bytearray, stats: ConversionStats, seed: int | None, balance: bool
) -> list[int] | None:
    """Indices of the rows to write, in order; None means all rows as converted."""
    if not balance and seed is None:
        stats.positives_written = sum(labels)
        stats.negatives_written = len(labels) - stats.positives_written
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
    stats.positives_written = sum(labels[i] for i in keep)
    stats.negatives_written = len(keep) - stats.positives_written
    return keep


def _finalize(rows_file: Any, offsets: array, order: list[int] | None, dst: Path) -> None:
    if dst.suffix == ".jsonl" and order is None:
        os.replace(rows_file.name, dst)
        return
    with open(rows_file.name, encoding="utf-8") as source, _scratch(dst.parent, dst.suffix) as target:
        lines = _lines_in_order(source, offsets, order)
        if dst.suffix == ".jsonl":
            for line in lines:
                target.write(line)
        else:
            _write_parquet(lines, target.name)
        target.flush()
        os.replace(target.name, dst)


def _lines_in_order(source: Any, offsets: array, order: list[int] | None) -> Iterator[str]:
    if order is None:
        yield from source
        return
    for index in order:
        source.seek(offsets[index])
        yield source.readline()


def _write_parquet(lines: Iterator[str], path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        batch: list[dict] = []
        for line in lines:
            batch.append(json.loads(line))
            if len(batch) == PARQUET_BATCH:
                writer = _write_batch(pa, pq, writer, batch, path)
                batch = []
        if batch or writer is None:
            writer = _write_batch(pa, pq, writer, batch, path)
    finally:
        if writer is not None:
            writer.close()


def _write_batch(pa: Any, pq: Any, writer: Any, batch: list[dict], path: str) -> Any:
    if writer is None:
        table = pa.Table.from_pylist(batch)
        writer = pq.ParquetWriter(path, table.schema)
    else:
        try:
            table = pa.Table.from_pylist(batch, schema=writer.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise ValueError(
                f"rows of different layouts (string and chat-message completions) cannot share one Parquet "
                f"file ({err}); write .jsonl or convert one layout at a time with --format"
            ) from None
    writer.write_table(table)
    return writer


@contextmanager
def _scratch(folder: Path, suffix: str = ".jsonl") -> Iterator[IO[str]]:
    """A temporary file beside its destination (so the final rename is atomic), removed unless renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w+", encoding="utf-8", dir=folder, prefix=".aot-convert-", suffix=suffix, delete=False
    ) as file:
        try:
            yield file
        finally:
            if os.path.exists(file.name):
                os.unlink(file.name)
