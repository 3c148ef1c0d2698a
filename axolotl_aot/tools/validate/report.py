"""What ``aot-cli validate`` found in one file: ``Problem``s gathered in a ``Report``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    key: str  # path of the YAML key, e.g. "datasets[0].path"; "" for the whole file
    message: str


@dataclass
class Report:
    path: Path
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def add(self, severity: Severity, key: str, message: str) -> None:
        self.problems.append(Problem(severity, key, message))

    def missing(self, value: str, fix: str = "") -> str:
        """The message for a local path that does not exist, and where it is if it exists relative to
        the config instead: ``axolotl.cli.train`` reads relative paths from the current directory."""
        beside = self.path.parent / value
        if beside.exists() and not Path(value).is_absolute():
            fix = (
                f"it exists beside the config ({beside}), but axolotl.cli.train reads relative paths from "
                f"the current directory ({Path.cwd()}): run from {self.path.parent} or give an absolute path"
            )
        return f"{value}: no such file or folder" + (f"; {fix}" if fix else "")
