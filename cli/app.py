"""The ``aot-cli`` Typer application: each command parses, calls ``axolotl_aot``, prints."""

from __future__ import annotations

import logging
import os
from importlib.metadata import version

import typer

from axolotl_aot_cli.convert import convert_dataset
from axolotl_aot_cli.report import report
from axolotl_aot_cli.smoke import smoke
from axolotl_aot_cli.validate import validate

# No telemetry from this tool, and axolotl's INFO logs (which it writes to stdout) would
# corrupt --json output: only errors unless the user asks for more.
for _name, _value in {
    "AXOLOTL_DO_NOT_TRACK": "1",
    "WANDB_MODE": "disabled",
    "AXOLOTL_LOG_LEVEL": "ERROR",
    "LOG_LEVEL": "ERROR",
    "AXOLOTL_TEE_STDOUT": "0",
}.items():
    os.environ.setdefault(_name, _value)
# Import-time chatter of torch, torchao and bitsandbytes about kernels a CPU lacks: not actionable.
for _logger in ("torch.utils._pytree", "torchao", "bitsandbytes"):
    logging.getLogger(_logger).setLevel(logging.ERROR)

app = typer.Typer(
    name="aot-cli",
    help="Alignment via Optimal Transport for Axolotl: validate configs, convert data, report checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.command()(validate)
app.command("convert-dataset")(convert_dataset)
app.command()(report)
app.command()(smoke)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"aot-cli {version('axolotl-aot')}")
        raise typer.Exit()


@app.callback()
def main_callback(
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Alignment via Optimal Transport for Axolotl."""


def main() -> None:
    """Console-script entry point."""
    app()
