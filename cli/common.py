"""What every command shares: consoles, the --json/--debug options, errors, and quiet libraries.

Text that comes from the user or a library (paths, messages, dataset values) goes through
``verbatim`` before rich sees it: rich reads ``[...]`` as markup and would drop
``[axolotl_aot.AOTPlugin]`` or the ``[v2]`` of ``data[v2].jsonl``.

Importing this package changes nothing in the process: the quiet settings (no telemetry, only
errors from axolotl's and torch's logging, which would corrupt ``--json`` on stdout) apply
while a command runs (``quiet``, entered by the app's callback) and are undone after it; the
console script (``app.main``) sets them for its whole process and the runs it launches.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

console = Console()
err_console = Console(stderr=True)

Json = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of tables.")
]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")]

T = TypeVar("T")

# No telemetry from this tool, and no stdout tee of axolotl's debug log.
QUIET_ENV = {"AXOLOTL_DO_NOT_TRACK": "1", "WANDB_MODE": "disabled", "AXOLOTL_TEE_STDOUT": "0"}
# axolotl's INFO logs go to stdout: only errors, unless the user set a level.
LOG_LEVEL_ENV = {"AXOLOTL_LOG_LEVEL": "ERROR", "LOG_LEVEL": "ERROR"}
# Import-time chatter of torch, torchao and bitsandbytes about kernels a CPU lacks: not actionable.
CHATTY_LOGGERS = ("torch.utils._pytree", "torchao", "bitsandbytes")


def verbatim(text: object) -> str:
    """``text`` as rich markup that prints exactly as written."""
    return escape(str(text))


def quiet_process() -> None:
    """The quiet settings for the whole process and its children (the console script's)."""
    for name, value in {**QUIET_ENV, **LOG_LEVEL_ENV}.items():
        os.environ.setdefault(name, value)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet(*, axolotl: bool = True) -> Iterator[None]:
    """The quiet settings while one command runs, in whatever process runs it; undone afterwards.

    axolotl configures its logging once, when ``axolotl.cli`` is first imported, from the
    environment: that import happens here, under the user's own environment (it is light, and
    what the command's later axolotl imports would do anyway), so that nothing configured while
    the command runs keeps a level of this command's. Its handlers, and the chatty loggers, are
    then raised to ERROR for the command's duration. A level the user set in the environment
    (``AXOLOTL_LOG_LEVEL``, ``LOG_LEVEL``) is left alone. ``axolotl=False``: for a command that
    does not use axolotl, whose logging is then not configured at all.
    """
    before = {name: os.environ.get(name) for name in QUIET_ENV}
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    levels: dict[Any, int] = {}
    try:
        if axolotl:
            # Imported here: axolotl_aot imports torch, which the CLI's import must not pay for.
            from axolotl_aot.integration.compat import configure_logging

            configure_logging()
            handlers = {  # what axolotl's logging configuration installed, to stdout
                "AXOLOTL_LOG_LEVEL": logging.getLogger("axolotl").handlers,
                "LOG_LEVEL": logging.getLogger().handlers,
            }
            for variable, targets in handlers.items():
                if variable not in os.environ:
                    levels.update((handler, handler.level) for handler in targets)
        levels.update((logging.getLogger(name), logging.getLogger(name).level) for name in CHATTY_LOGGERS)
        for target in levels:
            target.setLevel(max(target.level, logging.ERROR))
        yield
    finally:
        for target, level in levels.items():
            target.setLevel(level)
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def json_wanted() -> bool:
    """Whether the running command was given --json."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.params.get("json_output"))


def json_error(message: str, exit_code: int) -> NoReturn:
    """An error as ``{"error": ..., "exit_code": ...}`` on stdout, and that exit code."""
    print_json({"error": message, "exit_code": exit_code})
    raise typer.Exit(exit_code)


def guarded(debug: bool, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``work``; an error becomes one sentence on stderr (a JSON object on stdout with --json)
    and exit code 1; a traceback with --debug."""
    try:
        return work(*args, **kwargs)
    except (typer.Exit, typer.Abort, click.ClickException, KeyboardInterrupt):
        raise
    except Exception as err:
        if debug:
            raise
        message = str(err) or type(err).__name__
        if json_wanted():
            json_error(message, 1)
        err_console.print(f"[bold red]error:[/] {verbatim(message)}", highlight=False)
        err_console.print("(run again with --debug for the traceback)", style="dim")
        raise typer.Exit(1) from None


class Command(TyperCommand):
    """A command whose usage errors (exit code 2), with --json, are JSON objects on stdout too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes ``args``
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            if "--json" in (given[: given.index("--")] if "--" in given else given):
                json_error(err.format_message(), err.exit_code)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as err:
            if ctx.params.get("json_output"):
                json_error(err.format_message(), err.exit_code)
            raise


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))
