"""``aot-cli convert-dataset``: paired preference data to unpaired (prompt, completion, label) rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from axolotl_aot_cli.common import Debug, Json, console, err_console, guarded, print_json, verbatim

if TYPE_CHECKING:
    from axolotl_aot.tools.convert import ConversionStats

LAYOUT_HELP = "Input layout: auto (per row), prompt, chat, hh."


def convert_dataset(
    src: Annotated[
        str,
        typer.Argument(help="Paired data: .jsonl/.json/.parquet/.csv, a save_to_disk folder, or a hub name."),
    ],
    dst: Annotated[Path, typer.Argument(help="Output file; .jsonl or .parquet decides the format.")],
    layout: Annotated[str, typer.Option("--format", help=LAYOUT_HELP)] = "auto",
    split: Annotated[str | None, typer.Option(help="Split of a folder or hub dataset with several.")] = None,
    seed: Annotated[int | None, typer.Option(help="Shuffle the output rows with this seed.")] = None,
    dedupe: Annotated[
        bool, typer.Option("--dedupe", help="Keep one of identical (prompt, completion, label) rows.")
    ] = False,
    balance: Annotated[
        bool, typer.Option("--balance", help="Drop random rows of the larger label until counts match.")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Read at most this many input rows.")] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Write the dropped rows, with reasons, to this .jsonl file.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail, writing nothing, if any row would be dropped.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace DST (and the rejects file) if it exists.")
    ] = False,
    column: Annotated[
        list[str] | None,
        typer.Option(
            metavar="FIELD=COLUMN",
            help="Read FIELD (prompt, question, system, chosen, rejected) from COLUMN. Repeatable.",
        ),
    ] = None,
    json_output: Json = False,
    debug: Debug = False,
) -> None:
    """Turn each preference pair into one positive and one negative row: prompt, completion, label, pair_id.

    Chat inputs keep message lists. Every input row is written or counted as dropped with its
    reason; the summary shows that rows in = pairs converted + rows dropped, and ends with the
    `datasets:` entry that trains the output under rl: aot_unpaired. The output appears only
    when the conversion finished (written to a temporary file, then renamed).

    Exit code 0: written; 1: nothing written (no pair converted, --strict with drops, DST or
    --rejects that is the source, each other, a folder or in a folder that cannot be created,
    unreadable input); 2: bad options.

    Example: aot-cli convert-dataset paired.jsonl unpaired.jsonl --rejects dropped.jsonl
    """
    from axolotl_aot.tools.convert import LAYOUTS
    from axolotl_aot.tools.convert import convert_dataset as convert

    if layout not in LAYOUTS:
        raise typer.BadParameter(f"must be one of {', '.join(LAYOUTS)}", param_hint="--format")
    columns = dict(_field_column(text) for text in column or [])
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=json_output,
    ) as progress:
        task = progress.add_task("reading rows", total=None)

        def on_row(count: int) -> None:
            if count % 10_000 == 0:
                progress.update(task, description=f"converted {count:,} rows")

        stats = guarded(
            debug,
            convert,
            src,
            dst,
            layout=layout,
            split=split,
            seed=seed,
            dedupe=dedupe,
            balance=balance,
            limit=limit,
            rejects=rejects,
            strict=strict,
            overwrite=overwrite,
            columns=columns,
            on_row=on_row,
        )
    if json_output:
        print_json({"src": src, "dst": str(dst), **stats.as_dict()})
    else:
        _print_summary(src, dst, stats, rejects)


def _field_column(text: str) -> tuple[str, str]:
    name, sep, source = text.partition("=")
    if not (sep and name and source):
        raise typer.BadParameter(
            f"{text!r} is not FIELD=COLUMN, e.g. chosen=chosen_response", param_hint="--column"
        )
    return name, source


def _print_summary(src: str, dst: Path, stats: ConversionStats, rejects: Path | None) -> None:
    from axolotl_aot.tools.convert import datasets_yaml

    console.print(verbatim(f"{src} -> {dst}"), highlight=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("rows", justify="right")
    table.add_row("input rows read", f"{stats.rows_read:,}")
    table.add_row("  pairs converted", f"{stats.pairs_converted:,}")
    for reason, count in stats.dropped.most_common():
        first = f" (first: {stats.first_rows[reason]})"
        table.add_row(verbatim(f"  dropped: {reason}{first}"), f"{count:,}", style="yellow")
    table.add_row("output rows (2 per pair)", f"{2 * stats.pairs_converted:,}")
    if stats.duplicates_removed:
        table.add_row("  removed by --dedupe", f"{stats.duplicates_removed:,}")
    if stats.balanced_away:
        table.add_row("  removed by --balance", f"{stats.balanced_away:,}")
    table.add_row("rows written", f"{stats.rows_written:,}", style="bold")
    table.add_row("  label=True", f"{stats.positives_written:,}")
    table.add_row("  label=False", f"{stats.negatives_written:,}")
    console.print(table)
    layouts = ", ".join(f"{name} {count:,}" for name, count in stats.layouts.most_common())
    if layouts:
        console.print(f"layouts: {layouts}", highlight=False)
    if stats.limit_reached:
        console.print("stopped at --limit: later rows were not read", style="yellow")
    if rejects is not None and stats.rows_dropped:
        console.print(verbatim(f"dropped rows with their reasons: {rejects}"), highlight=False)
    console.print("for rl: aot_unpaired, in the YAML:", highlight=False)
    console.print(verbatim(datasets_yaml(dst, stats.dataset_type)), highlight=False, soft_wrap=True)
