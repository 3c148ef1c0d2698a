"""``aot-cli smoke``: run a config for a few steps on a tiny model of its family, on this machine."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from axolotl_aot_cli.common import Debug, Json, console, guarded, print_json

STYLE = {"ok": "green", "failed": "bold red", "not run here": "yellow"}


def smoke(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="The axolotl YAML of the real run.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps to run.")] = 2,
    keep: Annotated[
        Path | None, typer.Option("--keep", help="Write the smoke config, model and log here (kept).")
    ] = None,
    json_output: Json = False,
    debug: Debug = False,
) -> None:
    """Prove a config on this machine in a minute, before the real run.

    Runs CONFIG for a few optimizer steps with everything the same except the model's size:
    a tiny random model of the base model's family, its tokenizer when it is on this machine,
    the first rows of the config's own datasets, launched as the real run would be. Reports
    one row per capability: ok, failed (with the error and the fix) or not run here (GPU-only
    settings on a CPU machine). Exit code 1 if any row failed.

    Example: aot-cli smoke example_yamls/aot.yml --steps 2
    """
    from axolotl_aot.tools.smoke import run_smoke

    rows = guarded(debug, run_smoke, config, steps=steps, workdir=keep)
    if json_output:
        print_json([asdict(row) for row in rows])
    else:
        table = Table(title=f"aot-cli smoke {escape(str(config))}", header_style="bold", box=None)
        table.add_column("capability")
        table.add_column("result")
        table.add_column("detail", overflow="fold")
        for row in rows:
            table.add_row(escape(row.name), f"[{STYLE[row.status]}]{row.status}[/]", escape(row.detail))
        console.print(table)
    raise typer.Exit(1 if any(row.failed for row in rows) else 0)
