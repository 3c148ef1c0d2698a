"""What every command shares: consoles, the --json/--debug options and one-line errors.

Text that comes from the user or a library (paths, messages, dataset values) goes through
``verbatim`` before rich sees it: rich reads ``[...]`` as markup and would drop
``[axolotl_aot.AOTPlugin]`` or the ``[v2]`` of ``data[v2].jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)

Json = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of tables.")
]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")]

T = TypeVar("T")


def verbatim(text: object) -> str:
    """``text`` as rich markup that prints exactly as written."""
    return escape(str(text))


def guarded(debug: bool, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``work``; an error becomes one sentence on stderr and exit code 1 (a traceback with --debug)."""
    try:
        return work(*args, **kwargs)
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as err:
        if debug:
            raise
        message = str(err) or type(err).__name__
        err_console.print(f"[bold red]error:[/] {verbatim(message)}", highlight=False)
        err_console.print("(run again with --debug for the traceback)", style="dim")
        raise typer.Exit(1) from None


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))
