"""The accounting of a conversion: every input row converted or dropped with its reason, and what
trains the written rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from axolotl_aot.integration.modes import UNPAIRED
from axolotl_aot.integration.records import Record

# The dataset type that trains the written columns under rl: aot_unpaired, by the layouts written;
# None: no type, the columns train as written.
DATASET_TYPES: dict[frozenset[str], str | None] = {
    **{
        frozenset({"chat", *strings}): UNPAIRED.chat_type
        for strings in ((), ("prompt",), ("hh",), ("prompt", "hh"))
    },
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
    first_rows: dict[str, str] = field(default_factory=dict)  # drop reason -> its first place (Record.place)

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

    @property
    def as_chat(self) -> bool:
        """Whether string rows are written as chat: when chat rows share the file (one column cannot
        hold both)."""
        return "chat" in self.layouts and len(self.layouts) > 1

    def drop(self, record: Record, reason: str) -> None:
        """Count ``record`` as dropped for ``reason``, with a hint when its columns are a known layout."""
        # Decoder messages differ per line; the rejects file keeps them, the accounting groups them.
        grouped = reason.split(":")[0] if reason.startswith(("undecodable", "unencodable")) else reason
        self.dropped[grouped] += 1
        self.first_rows.setdefault(grouped, record.place)
        if record.row is not None:
            hint = next((text for names, text in LOOKALIKES if names <= record.row.keys()), None)
            if hint is not None:
                self.lookalikes[hint] += 1

    def count_written(self, labels: list[bool] | bytearray) -> None:
        """Record the label counts of the rows to write."""
        self.positives_written = sum(labels)
        self.negatives_written = len(labels) - self.positives_written

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
