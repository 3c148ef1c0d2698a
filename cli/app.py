"""The ``aot-cli`` Typer application: parses, calls ``axolotl_aot``, prints."""

from __future__ import annotations

from importlib.metadata import version

import typer

app = typer.Typer(
    name="aot-cli",
    help="Alignment via Optimal Transport for Axolotl.",
    no_args_is_help=True,
    add_completion=False,
)


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
