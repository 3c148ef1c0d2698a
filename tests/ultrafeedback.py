"""UltraFeedback-binarized-style paired rows, the paper's unpaired setting before it is split.

Each row has a ``prompt`` string, ``chosen``/``rejected`` message lists that repeat the
prompt turns (a system turn on even rows, an earlier exchange on every third row), the
``messages`` and score columns of the real set. User texts and answers are unique per row,
so a rendered row can be traced back to its source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def user_text(i: int) -> str:
    return f"Is {100 + i} even?"


def answers(i: int) -> tuple[str, str]:
    """(chosen, rejected): the right and the wrong parity of 100 + i."""
    n = 100 + i
    even, odd = f"Yes, {n} is even.", f"No, {n} is odd."
    return (even, odd) if n % 2 == 0 else (odd, even)


def prompt_turns(i: int) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": f"Be brief, {i}."}] if i % 2 == 0 else []
    if i % 3 == 0:
        turns += [{"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": f"Hello {i}"}]
    return [*turns, {"role": "user", "content": user_text(i)}]


def uf_row(i: int) -> dict[str, Any]:
    chosen, rejected = answers(i)
    turns = prompt_turns(i)
    return {
        "prompt": user_text(i),
        "prompt_id": f"id{i}",
        "chosen": [*turns, {"role": "assistant", "content": chosen}],
        "rejected": [*turns, {"role": "assistant", "content": rejected}],
        "messages": [*turns, {"role": "assistant", "content": chosen}],
        "score_chosen": 8.0,
        "score_rejected": 3.5,
    }


def write_uf(path: Path, n: int = 8, start: int = 0) -> Path:
    """Rows ``start`` to ``start + n - 1`` as JSON Lines (docs/ultrafeedback_*.jsonl: 0-95 and 900-923)."""
    path.write_text("".join(json.dumps(uf_row(i)) + "\n" for i in range(start, start + n)))
    return path
