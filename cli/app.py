"""The ``aot-cli`` Typer application: each command parses, calls ``axolotl_aot``, prints.

Importing it changes neither the environment nor any logger: see ``common.quiet``.
"""

from __future__ import annotations

from importlib.metadata import version

import typer

from axolotl_aot_cli.common import Command, quiet, quiet_process
from axolotl_aot_cli.convert import convert_dataset
from axolotl_aot_cli.report import report
from axolotl_aot_cli.smoke import smoke
from axolotl_aot_cli.validate import validate

# The commands that do not load axolotl, whose logging they then leave unconfigured.
WITHOUT_AXOLOTL = {"convert-dataset"}

app = typer.Typer(
    name="aot-cli",
    help="Alignment via Optimal Transport for Axolotl: validate configs, convert data, report checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.command(cls=Command)(validate)
app.command("convert-dataset", cls=Command)(convert_dataset)
app.command(cls=Command)(report)
app.command(cls=Command)(smoke)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"aot-cli {version('axolotl-aot')}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Alignment via Optimal Transport for Axolotl."""
    # Quiet while the command runs (also under typer.testing.CliRunner), undone when it ends.
    ctx.with_resource(quiet(axolotl=ctx.invoked_subcommand not in WITHOUT_AXOLOTL))


def main() -> None:
    """Console-script entry point: the whole process, and the runs it launches, are quiet."""
    quiet_process()
    app()
