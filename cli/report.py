"""``aot-cli report``: dominance of positive over negative rewards for trained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from axolotl_aot_cli.common import Debug, Json, console, err_console, guarded, print_json

if TYPE_CHECKING:
    from axolotl_aot.report import CheckpointReport


def report(
    checkpoints: Annotated[
        list[str], typer.Argument(metavar="CHECKPOINT...", help="Model or adapter folders; globs work.")
    ],
    config: Annotated[
        Path, typer.Option("--config", help="The axolotl YAML the checkpoints were trained with.")
    ],
    data: Annotated[
        Path | None, typer.Option(help="Evaluation rows (paired or unpaired, as the config's mode needs).")
    ] = None,
    ref: Annotated[
        str | None, typer.Option(help="Reference model (default: the config's base_model).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.json and the PNG plots.")] = Path("aot-report"),
    batch_size: Annotated[int, typer.Option(min=1, help="Rows scored per forward pass.")] = 16,
    max_samples: Annotated[int | None, typer.Option(min=1, help="Score at most this many rows.")] = None,
    json_output: Json = False,
    debug: Debug = False,
) -> None:
    """Score an evaluation set under each checkpoint and its reference; print dominance statistics.

    Reward = summed completion log-prob under the checkpoint minus under the reference (for
    adapters the adapter-disabled base). Rows are formatted and tokenized exactly as training
    does. Writes report.json and plots (reward CDFs and quantile curves per checkpoint, the
    violation fraction across checkpoints) to --out.

    Example: aot-cli report "outputs/tiny-aot/checkpoint-*" --config example_yamls/tiny/aot.yml
    --data axolotl_aot/data/parity_paired_test.jsonl
    """
    reports, plots = guarded(
        debug, _run, checkpoints, config, data, ref, out, batch_size, max_samples, json_output
    )
    if json_output:
        print_json({"out": str(out), "checkpoints": [r.as_dict() for r in reports]})
        return
    for item in reports:
        _print_checkpoint(item)
    if len(reports) > 1:
        _print_trend(reports)
    console.print(f"report: {out / 'report.json'}", highlight=False)
    for plot in plots:
        console.print(f"plot: {plot}", highlight=False)


def _run(
    checkpoints: list[str],
    config: Path,
    data: Path | None,
    ref: str | None,
    out: Path,
    batch_size: int,
    max_samples: int | None,
    quiet: bool,
) -> tuple[list[CheckpointReport], list[Path]]:
    import datasets
    import torch
    import transformers

    from axolotl_aot import report as lib

    datasets.disable_progress_bars()  # this command shows its own progress
    transformers.utils.logging.disable_progress_bar()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    paths = lib.resolve_checkpoints(checkpoints)
    cfg = lib.load_report_config(config, data, ref)
    dataset = lib.load_eval_dataset(cfg, max_samples)
    reports = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=quiet,
    ) as progress:
        for path in paths:
            task = progress.add_task(f"scoring {path.name}", total=None)
            model, reference, tokenizer = lib.load_models(path, cfg, ref, device)
            scores = lib.score(
                model,
                reference,
                tokenizer,
                dataset,
                cfg,
                batch_size=batch_size,
                device=device,
                on_batch=lambda done, total, task=task: progress.update(task, completed=done, total=total),
            )
            reports.append(lib.summarize(path, scores, cfg.rl_beta))
            progress.remove_task(task)
    settings = {
        "config": str(config),
        "data": str(data) if data else None,
        "mode": cfg.aot_mode,
        "beta": cfg.rl_beta,
    }
    return reports, lib.write_outputs(reports, out, settings)


def _print_checkpoint(item: CheckpointReport) -> None:
    stats = item.rewards
    table = Table(
        title=f"{item.checkpoint}  ({item.n_pos} positive, {item.n_neg} negative)", title_justify="left"
    )
    table.add_column("statistic")
    table.add_column("value", justify="right")
    table.add_row("violation fraction (rewards)", f"{stats.violation_fraction:.3f}")
    table.add_row("violation area", f"{stats.violation_area:.4f}")
    table.add_row("KS statistic", f"{stats.ks_statistic:.3f}")
    table.add_row("win rate P(pos > neg)", f"{stats.win_rate:.3f}")
    table.add_row("min quantile margin", f"{stats.min_quantile_margin:+.3f}")
    table.add_row("quantile margins t=.1..", " ".join(f"{m:+.2f}" for m in stats.quantile_margins))
    table.add_row("mean reward pos / neg", f"{stats.mean_pos:+.3f} / {stats.mean_neg:+.3f}")
    if item.pair_accuracy is not None:
        table.add_row("pair accuracy", f"{item.pair_accuracy:.3f}")
        table.add_row("mean pair margin", f"{item.mean_margin:+.3f}")
    for cost, value in item.aot_loss.items():
        table.add_row(f"AOT loss ({cost})", f"{value:.4f}")
    table.add_row("violation fraction (log-probs)", f"{item.logp_violation:.3f}")
    table.add_row("  reference (log-probs)", f"{item.ref_logp_violation:.3f}")
    console.print(table)
    style = "bold green" if stats.violation_fraction == 0 else "yellow"
    console.print(f"verdict: {item.verdict}", style=style, highlight=False)


def _print_trend(reports: list[CheckpointReport]) -> None:
    table = Table(title="over training", title_justify="left")
    table.add_column("checkpoint", no_wrap=True)
    for column in ("violation", "win rate", "min margin", "log-prob violation", "pair acc."):
        table.add_column(column, justify="right")
    table.add_row("reference", "-", "-", "-", f"{reports[0].ref_logp_violation:.3f}", "-")
    for item in reports:
        accuracy = f"{item.pair_accuracy:.3f}" if item.pair_accuracy is not None else "-"
        table.add_row(
            f"step {item.step}" if item.step is not None else Path(item.checkpoint).name,
            f"{item.rewards.violation_fraction:.3f}",
            f"{item.rewards.win_rate:.3f}",
            f"{item.rewards.min_quantile_margin:+.3f}",
            f"{item.logp_violation:.3f}",
            accuracy,
        )
    console.print(table)
