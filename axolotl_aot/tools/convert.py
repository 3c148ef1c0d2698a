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
accounting adds up; a destination that would overwrite the source, the rejects or a folder
is refused before anything is read, and a conversion that yields no pair writes nothing and
says why. The output streams to a temporary file renamed into place at the end (with the
umask's mode), so an interrupted run leaves no partial file; memory stays bounded (8 bytes of
offset per output row, plus a hash per row with ``dedupe``).

A file mixing chat rows with string rows is written all as chat, since one column cannot
hold both: a ``prompt`` row's prompt becomes a user turn after its ``system`` turn, an ``hh``
prompt its Human/Assistant turns, an answer one assistant turn.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import yaml
from trl.data_utils import extract_prompt

from axolotl_aot.integration.chat import as_messages
from axolotl_aot.tools.records import Record, iter_records

Layout = Literal["auto", "prompt", "chat", "hh"]
LAYOUTS: tuple[str, ...] = ("auto", "prompt", "chat", "hh")
OUTPUT_SUFFIXES = (".jsonl", ".parquet")
ASSISTANT = "\n\nAssistant:"
PROMPT_FIELDS = ("prompt", "question")
PARQUET_BATCH = 8192
# The dataset type that trains the written columns under rl: aot_unpaired, by the layouts written;
# None: no type, the columns train as written.
CHAT_TYPE = "axolotl_aot_chat.unpaired"
DATASET_TYPES: dict[frozenset[str], str | None] = {
    **{frozenset({"chat", *strings}): CHAT_TYPE for strings in ((), ("prompt",), ("hh",), ("prompt", "hh"))},
    frozenset({"prompt"}): "chatml.prompt_pairs",
    frozenset({"hh"}): None,
    frozenset({"prompt", "hh"}): None,
}
# Input columns of known layouts that this converter does not read, and what to do instead.
LOOKALIKES: tuple[tuple[frozenset[str], str], ...] = (
    (
        frozenset({"completion", "label"}),
        "the rows are already unpaired (prompt, completion, label): train them with rl: aot_unpaired "
        "as they are, no conversion needed",
    ),
    (
        frozenset({"chosen_response", "rejected_response"}),
        "the rows hold answers in chosen_response/rejected_response (argilla layout): pass "
        "--column chosen=chosen_response --column rejected=rejected_response "
        "(and --column prompt=instruction if the prompt is in instruction)",
    ),
    (
        frozenset({"response_j", "response_k"}),
        "the rows hold answers in response_j/response_k (stack-exchange layout): pass "
        "--column chosen=response_j --column rejected=response_k",
    ),
)


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
    lookalikes: Counter[str] = field(default_factory=Counter)  # hints from LOOKALIKES, per dropped row
    first_rows: dict[str, int] = field(default_factory=dict)  # drop reason -> its first row (0-based)

    @property
    def dataset_type(self) -> str | None:
        """The ``type:`` that trains the written rows under ``rl: aot_unpaired`` (None: no type)."""
        return DATASET_TYPES.get(frozenset(self.layouts))

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
            "first_dropped_rows": self.first_rows,
            "duplicates_removed": self.duplicates_removed,
            "balanced_away": self.balanced_away,
            "rows_written": self.rows_written,
            "positives_written": self.positives_written,
            "negatives_written": self.negatives_written,
            "layouts": dict(self.layouts),
            "limit_reached": self.limit_reached,
            "dataset_type": self.dataset_type,
        }

    def why_nothing(self) -> str:
        """Why no pair was converted: the top drop reasons with counts, and a hint if one applies."""
        reasons = ", ".join(f"{n} {reason}" for reason, n in self.dropped.most_common(3))
        message = f"no pair converted from {self.rows_read} row(s): {reasons or 'the source is empty'}"
        if self.lookalikes:
            message += f"; {self.lookalikes.most_common(1)[0][0]}"
        elif any(reason.startswith("wrong type: a ") and "--format" in reason for reason in self.dropped):
            message += "; the rows are of another layout: drop --format (auto detects it per row)"
        return message


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
    _check_destinations(src, dst, rejects, overwrite)
    stats = ConversionStats()
    with ExitStack() as cleanup:
        rows_file = cleanup.enter_context(_scratch(dst.parent))
        rejects_file = cleanup.enter_context(_scratch(rejects.parent)) if rejects else None
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
        as_chat = _mixing(stats)
        order = _output_order(labels, stats, seed, balance)
        rows_file.flush()
        _finalize(rows_file, offsets, order, dst, as_chat)
        if rejects_file is not None:
            rejects_file.flush()
            _publish(rejects_file.name, rejects)
    return stats


def datasets_yaml(dst: str | Path, dataset_type: str | None) -> str:
    """The ``datasets:`` YAML entry that trains ``dst`` as written (no ``type:`` when None)."""
    entry = {"path": str(dst), "type": dataset_type, "split": "train"}
    if dataset_type is None:
        del entry["type"]
    return yaml.safe_dump({"datasets": [entry]}, sort_keys=False).rstrip()


def _check_destinations(src: str | Path, dst: Path, rejects: Path | None, overwrite: bool) -> None:
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


def _renamed(records: Iterator[Record], columns: dict[str, str]) -> Iterator[Record]:
    """Rows with the source column of each field of ``columns`` (field -> column) under the field's name,
    replacing a column already named like the field."""
    for record in records:
        if record.row is None:
            yield record
            continue
        row = {k: v for k, v in record.row.items() if k not in columns}
        row.update({name: record.row[column] for name, column in columns.items() if column in record.row})
        yield Record(record.index, row, record.error, record.raw)


def _mixing(stats: ConversionStats) -> bool:
    """Whether string rows are written as chat: when chat rows share the file."""
    return "chat" in stats.layouts and len(stats.layouts) > 1


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
            rows = [
                {"prompt": prompt, "completion": completion, "label": label, "pair_id": record.index, **extra}
                for completion, label in ((chosen, True), (rejected, False))
            ]
            lines = [_encoded(row) for row in rows]
        except Dropped as reason:
            _reject(record, str(reason), rejects, stats)
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


def _encoded(row: dict[str, Any]) -> str:
    """The JSON line of ``row``, or ``Dropped`` if its text cannot be written as UTF-8."""
    line = json.dumps(row, ensure_ascii=False) + "\n"
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as err:
        raise Dropped(
            f"unencodable text: {err.object[err.start : err.end]!a} is a lone UTF-16 surrogate, not valid "
            "Unicode"
        ) from None
    return line


def _reject(record: Record, reason: str, rejects: Any, stats: ConversionStats) -> None:
    # Decoder messages differ per line; the rejects file keeps them, the accounting groups them.
    grouped = reason.split(":")[0] if reason.startswith(("undecodable", "unencodable")) else reason
    stats.dropped[grouped] += 1
    stats.first_rows.setdefault(grouped, record.index)
    if record.row is not None:
        hint = next((text for names, text in LOOKALIKES if names <= record.row.keys()), None)
        if hint is not None:
            stats.lookalikes[hint] += 1
    if rejects is not None:
        kept = record.row if record.row is not None else record.raw
        rejects.write(json.dumps({"row": record.index, "reason": reason, "data": kept}, default=str))
        rejects.write("\n")


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


def _finalize(rows_file: Any, offsets: array, order: list[int] | None, dst: Path, as_chat: bool) -> None:
    if dst.suffix == ".jsonl" and order is None and not as_chat:
        _publish(rows_file.name, dst)
        return
    with open(rows_file.name, encoding="utf-8") as source, _scratch(dst.parent, dst.suffix) as target:

        def rows() -> Iterator[dict[str, Any]]:
            for line in _lines_in_order(source, offsets, order):
                row = json.loads(line)
                yield _chat_row(row) if as_chat else row

        if dst.suffix == ".jsonl":
            for row in rows():
                target.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            _write_parquet(rows, target.name)
        target.flush()
        _publish(target.name, dst)


def _lines_in_order(source: Any, offsets: array, order: list[int] | None) -> Iterator[str]:
    if order is None:
        source.seek(0)
        yield from source
        return
    for index in order:
        source.seek(offsets[index])
        yield source.readline()


def _chat_row(row: dict[str, Any]) -> dict[str, Any]:
    """A string row as chat messages: a ``system`` column is the first turn, an hh prompt its turns."""
    prompt = row["prompt"]
    if isinstance(prompt, str):
        system = row.pop("system", None)
        turns = _hh_turns(prompt) if prompt.endswith(ASSISTANT) else as_messages(prompt, "user")
        prompt = ([{"role": "system", "content": system}] if system else []) + turns
    return {**row, "prompt": prompt, "completion": as_messages(row["completion"], "assistant")}


def _hh_turns(prompt: str) -> list[dict[str, str]]:
    """The turns of a Human/Assistant transcript ending with the answer's empty ``Assistant:``."""
    head, *parts = re.split(r"\n\n(Human|Assistant):", prompt.removesuffix(ASSISTANT))
    turns = [{"role": "system", "content": head.strip()}] if head.strip() else []
    roles = {"Human": "user", "Assistant": "assistant"}
    return turns + [
        {"role": roles[r], "content": c.strip()} for r, c in zip(parts[::2], parts[1::2], strict=True)
    ]


def _write_parquet(rows: Callable[[], Iterator[dict[str, Any]]], path: str) -> None:
    """Two passes over ``rows``: one schema for the whole file (a column of any row is in every
    row, null where the row lacks it), then the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pa.unify_schemas(
            [pa.Table.from_pylist(batch).schema for batch in _batches(rows())], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ValueError(
            f"the rows' columns have types that cannot share one Parquet file ({err}); write .jsonl instead"
        ) from None
    with pq.ParquetWriter(path, schema) as writer:
        for batch in _batches(rows()):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == PARQUET_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _publish(temporary: str, dst: Path) -> None:
    """Rename a finished temporary file (mode 0600) into place with the mode the umask gives new files."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    os.replace(temporary, dst)


@contextmanager
def _scratch(folder: Path, suffix: str = ".jsonl") -> Iterator[IO[str]]:
    """A temporary file beside its destination (so the final rename is atomic), removed unless renamed."""
    with tempfile.NamedTemporaryFile(
        "w+", encoding="utf-8", dir=folder, prefix=".aot-convert-", suffix=suffix, delete=False
    ) as file:
        try:
            yield file
        finally:
            if os.path.exists(file.name):
                os.unlink(file.name)
