"""One capability row of a smoke run: ok, failed (with the error's first line and a fix) or not run here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "failed", "not run here"]


@dataclass(frozen=True)
class Row:
    name: str
    status: Status
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def ok(name: str, detail: str = "") -> Row:
    return Row(name, "ok", detail)


def failed(name: str, detail: str) -> Row:
    return Row(name, "failed", detail)


def not_run(name: str, detail: str) -> Row:
    return Row(name, "not run here", detail)
