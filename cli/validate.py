"""``aot-cli validate``: check AOT configs with axolotl's own pipeline, without loading a model."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from axolotl_aot_cli.common import Debug, Json, console, print_json, verbatim

if TYPE_CHECKING:
    from axolotl_aot.tools.validate import Report

STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def validate(
    configs: Annotated[list[Path], typer.Argument(metavar="CONFIG...", help="axolotl YAML files.")],
    num_gpus: Annotated[
        int | None, typer.Option("--num-gpus", min=1, help="GPUs the run will use (sizes the world sort).")
    ] = None,
    gpu: Annotated[
        bool, typer.Option("--gpu", help="Validate as on a GPU machine, not against this one.")
    ] = False,
    json_output: Json = False,
    debug: Debug = False,
) -> None:
    """Check axolotl YAMLs for AOT training, exactly as axolotl.cli.train would, without loading a model.

    Reports YAML syntax errors (line and column), axolotl schema errors, unknown (misspelt)
    keys, a local base_model that does not exist, AOT mistakes, and local dataset files that
    are missing or that the configured type renders wrongly (first rows). Exit code 0: no
    error (warnings allowed); 1: an error in any file; 2: bad options. Each file is named with
    its result, also one that axolotl's schema refuses by raising (e.g. a deprecated key), and
    the files after it are still checked.

    Example: aot-cli validate example_yamls/aot.yml --gpu --num-gpus 8
    """
    reports = [_validate(path, num_gpus, gpu, debug) for path in configs]
    if json_output:
        print_json(
            [
                {"config": str(r.path), "ok": r.ok, "problems": [asdict(p) for p in r.problems]}
                for r in reports
            ]
        )
    else:
        for report in reports:
            _print_report(report)
    raise typer.Exit(0 if all(report.ok for report in reports) else 1)


def _validate(path: Path, num_gpus: int | None, gpu: bool, debug: bool) -> Report:
    """One file's report; an exception (axolotl's schema raises some, e.g. DeprecationWarning for
    a removed key) is that file's error, so that the other files are still checked."""
    from axolotl_aot.tools.validate import Report, validate_file

    try:
        return validate_file(path, n_gpu=num_gpus, as_gpu=gpu)
    except Exception as err:
        if debug:
            raise
        report = Report(path)
        report.add("error", "", f"the config does not load ({type(err).__name__}): {err}".rstrip(": "))
        return report


def _print_report(report: Report) -> None:
    errors = sum(p.severity == "error" for p in report.problems)
    verdict = "[bold green]OK[/]" if report.ok else f"[bold red]{errors} error(s)[/]"
    console.print(f"{verbatim(report.path)}: {verdict}", highlight=False)
    if not report.problems:
        return
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("severity")
    table.add_column("key")
    table.add_column("problem", overflow="fold")
    for problem in report.problems:
        table.add_row(
            f"[{STYLE[problem.severity]}]{problem.severity}[/]",
            verbatim(problem.key or "-"),
            verbatim(problem.message),
        )
    console.print(table)
