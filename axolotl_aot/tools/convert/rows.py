"""One paired row to its unpaired parts: the layout it is in, its prompt and its two answers.

Layouts: ``prompt`` (a ``prompt`` or ``question`` string with ``chosen``/``rejected`` strings),
``chat`` (``chosen``/``rejected`` message lists holding the prompt turns, or an explicit
message-list ``prompt``) and ``hh`` (whole "Human:/Assistant:" transcripts). A row that cannot
become a pair raises ``Dropped`` with the reason the accounting shows.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from axolotl_aot.integration.chat import as_messages
from axolotl_aot.integration.compat import extract_prompt

Layout = Literal["auto", "prompt", "chat", "hh"]
LAYOUTS: tuple[str, ...] = ("auto", "prompt", "chat", "hh")
ASSISTANT = "\n\nAssistant:"
PROMPT_FIELDS = ("prompt", "question")


class Dropped(Exception):
    """An input row that cannot become a pair, with the reason shown in the accounting."""


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


def encoded(row: dict[str, Any]) -> str:
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


def chat_row(row: dict[str, Any]) -> dict[str, Any]:
    """A string row as chat messages, for a file whose other rows are chat: a ``system`` column is the
    first turn, an hh prompt its turns."""
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
