"""The prompts a generation report samples on, rendered as training renders them.

A prompt comes from a row: the rows of ``--prompts FILE`` (JSON Lines, JSON, CSV or Parquet, a
``prompt`` column of text or messages) or, by default, the rows of the config's evaluation set
(``test_datasets`` or ``--data``: paired, unpaired or chat rows). Each row goes through the
config's own dataset ``type:`` (axolotl's transform, ``data_checks.transform_of``), so the policy
continues the very text training put before its completions. A ``--prompts`` row lacks the
completion columns a type reads: those (never a prompt or system column) are taken from the first
row of the config's data, and the rendered prompt must contain the row's own prompt (else the type
reads another column, and every prompt would render as that row's).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axolotl_aot.integration import modes
from axolotl_aot.integration.chat import as_messages
from axolotl_aot.integration.records import Record, is_local, iter_records


@dataclass(frozen=True)
class Prompt:
    """One prompt: ``text`` as the policy sees it and its token ids; ``messages`` and ``plain`` (its last
    user turn) as a reward model or function reads it; ``where`` names its source row for messages."""

    text: str
    ids: list[int] = field(repr=False)
    messages: list[dict[str, str]]
    plain: str
    where: str


def load_prompts(
    cfg: Any, tokenizer: Any, path: Path | None = None, limit: int | None = None
) -> list[Prompt]:
    """The distinct prompts of ``path`` (else of the config's ``test_datasets``), at most ``limit``.

    A ``val_set_size`` split has no rows of its own to read prompts from: pass ``--prompts``.
    """
    if path is not None:
        section = "test_datasets" if cfg.test_datasets else "datasets"
        try:  # the config's data may be out of reach (a hub dataset offline): rows then need every column
            first = next((r.row for r in _records(cfg[section][0], section) if r.row is not None), None)
        except ValueError:
            first = None
        template = {k: v for k, v in (first or {}).items() if k not in PROMPT_COLUMNS}
        sources = [(str(path), _records(path, "--prompts"), _renderer(cfg, section, 0, tokenizer))]
    elif cfg.test_datasets:
        template = {}
        sources = [
            (f"test_datasets[{index}] ({entry.get('path')})", _records(entry, f"test_datasets[{index}]"),
             _renderer(cfg, "test_datasets", index, tokenizer))
            for index, entry in enumerate(cfg.test_datasets)
        ]  # fmt: skip
    else:
        raise ValueError(
            "no prompts: pass --prompts FILE (rows with a prompt), or --data FILE, or set test_datasets "
            "in the config (a val_set_size split has no rows of its own to read)"
        )
    prompts: dict[str, Prompt] = {}
    for label, records, render in sources:
        for record in records:
            where = f"{label} {record.place}"
            if record.row is None:
                raise ValueError(f"{where}: {record.error}")
            prompt = _prompt(record.row, template, render, tokenizer, where)
            prompts.setdefault(prompt.text, prompt)
            if limit is not None and len(prompts) >= limit:
                return list(prompts.values())
    if not prompts:
        raise ValueError(
            f"{' and '.join(s[0] for s in sources)} has no prompts: give rows with a prompt column"
        )
    return list(prompts.values())


# The columns a prompt is read from: never taken from the config's data for a --prompts row.
PROMPT_COLUMNS = frozenset(
    ("prompt", "question", "instruction", "input", "system", "messages", "conversation", "conversations")
)


def _records(source: Any, label: str) -> Iterable[Record]:
    """The rows of a --prompts file, or of a config's dataset entry (its split)."""
    path, split = (source, None) if isinstance(source, str | Path) else (source["path"], source.get("split"))
    try:
        yield from iter_records(Path(path).expanduser() if is_local(path) else path, split)
    except (OSError, ValueError) as err:
        raise ValueError(f"{label} {path}: {err}") from None


def _renderer(
    cfg: Any, section: str, index: int, tokenizer: Any
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The config's dataset type of entry ``index`` of ``section``, bound to the tokenizer if it needs one."""
    from axolotl_aot.integration.data_checks import transform_of  # imports datasets

    mode = modes.data_mode(cfg)
    transform = transform_of(mode.axolotl_rl, cfg, section, index)
    if transform is None:
        raise ValueError(
            f"{section}[{index}].type {cfg[section][index].get('type')!r} is not a {mode.axolotl_rl} type"
        )
    if isinstance(transform, tuple):  # (transform, map kwargs)
        transform = transform[0]
    if "tokenizer" in inspect.signature(transform).parameters:
        transform = functools.partial(transform, tokenizer=tokenizer)
    return transform


def _prompt(
    row: dict[str, Any],
    template: dict[str, Any],
    render: Callable[[dict[str, Any]], dict[str, Any]],
    tokenizer: Any,
    where: str,
) -> Prompt:
    from axolotl_aot.integration.data_checks import user_text

    own = user_text(row) or user_text({"prompt": row.get("messages")})
    if not own or not own.strip():
        raise ValueError(f"{where} has no prompt: give each row a prompt (text or a list of messages)")
    try:
        rendered = render({**template, **row})["prompt"]
    except Exception as err:  # whatever the type raises, training would raise it too
        raise ValueError(
            f"{where}: the config's dataset type cannot render it ({type(err).__name__}: {err}); give rows "
            "with the columns the config's data has (completions may be left out)"
        ) from err
    if isinstance(rendered, list):  # conversational: rendered with the chat template, as TRL does
        ids = tokenizer.apply_chat_template(
            rendered, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        text = tokenizer.apply_chat_template(rendered, add_generation_prompt=True, tokenize=False)
    else:
        text, ids = rendered, tokenizer(rendered)["input_ids"]
    if own.strip() not in text:
        raise ValueError(
            f"{where}: the config's dataset type renders the prompt {text[:60]!r}, without the row's own "
            f"{own[:40]!r}: it reads another column; give rows with the columns the config's data has"
        )
    source = row.get("prompt", row.get("messages"))
    messages = (
        as_messages(source, "user") if isinstance(source, str | list) else [{"role": "user", "content": own}]
    )
    if isinstance(row.get("system"), str) and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": row["system"]}, *messages]
    return Prompt(text, list(ids), messages, own, where)
