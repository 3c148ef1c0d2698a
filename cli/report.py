"""``aot-cli report``: dominance of positive over negative rewards for trained checkpoints, by run.

The pipeline (checks, scoring, report.json and plots) is ``axolotl_aot.tools.report.run_report``;
this command parses the runs, shows progress and prints.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from axolotl_aot_cli.common import Debug, Json, console, err_console, guarded, print_json

if TYPE_CHECKING:
    from axolotl_aot.tools.report import CheckpointReport, GenerationRequest, RunReport, RunSpec


def report(
    checkpoints: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[CHECKPOINT...]",
            help="One run's model or adapter folders, or its output_dir (its checkpoint-N folders, then "
            "the final model); globs work. Or use --run.",
        ),
    ] = None,
    run: Annotated[
        list[str] | None,
        typer.Option(
            "--run",
            metavar="NAME=GLOB",
            help="A run's checkpoints (folders, output_dirs or globs); repeat for several runs, or for "
            "several globs.",
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            metavar="[NAME=]FILE",
            help="The axolotl YAML a run was trained with (rl: aot, aot_unpaired, dpo, ipo, simpo or kto): "
            "FILE for CHECKPOINT... arguments, NAME=FILE for each --run.",
        ),
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[NAME=]FILE",
            help="Evaluation rows (paired or unpaired, as a run's config needs): FILE for every run, "
            "or NAME=FILE per run. Default: each config's test_datasets or val_set_size.",
        ),
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option(
            help="Reference model (default: each config's base_model). It must be the model each "
            "checkpoint was trained from, as its adapter_config.json or model card names it."
        ),
    ] = None,
    force_ref: Annotated[
        bool,
        typer.Option(
            "--force-ref",
            help="Score against --ref (or the config's base_model) even where the checkpoint was "
            "trained from another model.",
        ),
    ] = False,
    out: Annotated[Path, typer.Option(help="Folder for report.json and the PNG plots.")] = Path("aot-report"),
    batch_size: Annotated[
        int,
        typer.Option(min=1, help="Rows scored per forward pass; with --generate, prompts per generate call."),
    ] = 16,
    max_samples: Annotated[
        int | None, typer.Option(min=1, help="Score at most this many rows (with --generate: and prompts).")
    ] = None,
    generate: Annotated[
        bool,
        typer.Option(
            "--generate",
            help="Also judge what each checkpoint writes: sample its completions and its reference's, score "
            "them with --reward-model or --reward-fn, and report the rewards, win rate and sampled KL.",
        ),
    ] = False,
    prompts: Annotated[
        Path | None,
        typer.Option(
            help="--generate: prompts to sample on (JSONL, JSON, CSV or Parquet rows with a prompt: text or "
            "messages), rendered by the config's dataset type. Default: the evaluation rows' prompts."
        ),
    ] = None,
    reward_model: Annotated[
        str | None,
        typer.Option(
            metavar="PATH_OR_ID",
            help="--generate: a Hugging Face sequence-classification reward model (one output), scored on "
            "the prompt and completion through its own chat template.",
        ),
    ] = None,
    reward_fn: Annotated[
        str | None,
        typer.Option(
            metavar="MODULE:FUNCTION",
            help="--generate: a Python function (prompt: str, completion: str) -> float; MODULE importable "
            "from the current folder, or path/to/file.py.",
        ),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(min=2, help="--generate: completions per prompt and model [default: 4].")
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, help="--generate: tokens per completion at most [default: 128].")
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="--generate: sampling temperature, above 0 [default: 1, the model's own]."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="--generate: the seed of the first batch, one more per batch [default: 0]."),
    ] = None,
    json_output: Json = False,
    debug: Debug = False,
) -> None:
    r"""Score an evaluation set under each checkpoint and its reference; print dominance statistics.

    Reward = summed completion log-prob under the checkpoint minus under the reference (for
    adapters the adapter-disabled base). Rows are formatted and tokenized exactly as training
    does. A training's output_dir stands for all its checkpoints: its checkpoint-N folders in
    step order, its final model last, with the trend over them. Several runs (e.g. a DPO
    baseline and an AOT run) are scored side by side, each under its own config: one trend table
    with a run column. Writes report.json (keyed by run) and plots (reward CDFs and quantile
    curves per checkpoint, the last checkpoints of all runs overlaid, the violation fraction
    across checkpoints) to --out. Every path is checked before anything is loaded, and so is each
    checkpoint's reference: a checkpoint is never scored against another model than the one it
    was trained from (its adapter_config.json, its model card, else the config's base_model)
    unless --force-ref says so.

    Implicit-reward dominance tells how a checkpoint ranks given completions, not how well it
    writes. --generate judges what it writes: K samples per prompt from each checkpoint and from
    its reference (same prompts, same seeds), scored by --reward-model or --reward-fn; it reports
    the reward distributions, the dominance of the checkpoint's rewards over the reference's, the
    win rate (ties half) and the sampled KL per completion token with its standard error, plots the
    reward CDFs and reward against KL, and writes every sample to --out/samples.

    Exit code 0: reported; 1: an error (with --json, {"error": ..., "exit_code": 1} on stdout);
    2: bad options.

    Example: aot-cli report outputs/tiny-aot --config example_yamls/tiny/aot.yml
    --data axolotl_aot/data/parity_paired_test.jsonl

    Two runs side by side: aot-cli report --run dpo="outputs/dpo/checkpoint-\*" --config dpo=dpo.yml
    --run aot="outputs/aot/checkpoint-\*" --config aot=example_yamls/tiny/aot.yml
    --data axolotl_aot/data/parity_paired_test.jsonl

    Generations: aot-cli report outputs/tiny-aot --config example_yamls/tiny/aot.yml --generate
    --reward-fn my_rewards.py:score --samples 4 --max-new-tokens 32
    """
    specs = _run_specs(checkpoints or [], run or [], config or [], data or [])
    sampling = {
        "samples": samples,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "seed": seed,
    }
    request = _generation_request(generate, prompts, reward_model, reward_fn, sampling, batch_size)
    from axolotl_aot.tools import report as lib  # light: the heavy imports follow its path checks

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=json_output,
    ) as progress:
        runs, plots = guarded(
            debug,
            lib.run_report,
            specs,
            out,
            ref=ref,
            force_ref=force_ref,
            batch_size=batch_size,
            max_samples=max_samples,
            progress=_Bar(progress),
            generation=request,
        )
    if json_output:
        print_json({"out": str(out), "runs": {r.name: r.as_dict() for r in runs}})
        return
    scored = [item for item in runs if item.checkpoints[0].rewards is not None]
    for item in scored:
        for checkpoint in item.checkpoints:
            _print_checkpoint(checkpoint, item.name if len(runs) > 1 else None)
    if len(scored) > 1 or (scored and len(scored[0].checkpoints) > 1):
        _print_trend(scored)
    if request is not None:
        _print_generation(runs)
    console.print(f"report: {out / 'report.json'}", highlight=False)
    for plot in plots:
        console.print(f"plot: {plot}", highlight=False)


class _Bar:
    """``run_report``'s progress as a rich bar per checkpoint."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None

    def checkpoint_started(self, run: str, checkpoint: Path) -> None:
        self.task = self.progress.add_task(f"scoring {run}: {checkpoint.name}", total=None)

    def batch_done(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def sampling_started(self, run: str, model: str, prompts: int) -> None:
        self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"sampling {run}: {model} (prompts)", total=prompts)

    def checkpoint_done(self, run: str, checkpoint: Path) -> None:
        self.progress.remove_task(self.task)


def _generation_request(
    generate: bool,
    prompts: Path | None,
    reward_model: str | None,
    reward_fn: str | None,
    sampling: dict[str, int | float | None],
    batch_size: int,
) -> GenerationRequest | None:
    """``--generate``'s options, or None; a generation option without ``--generate`` is an error."""
    given = {"--prompts": prompts, "--reward-model": reward_model, "--reward-fn": reward_fn}
    given |= {f"--{name.replace('_', '-')}": value for name, value in sampling.items()}
    if not generate:
        if named := [name for name, value in given.items() if value is not None]:
            raise typer.BadParameter(f"{', '.join(named)} only with --generate", param_hint="--generate")
        return None
    from axolotl_aot.tools.generation import SamplingSettings
    from axolotl_aot.tools.report import GenerationRequest

    chosen = {name: value for name, value in sampling.items() if value is not None}
    try:
        settings = SamplingSettings(**chosen, batch_size=batch_size)
        return GenerationRequest(reward_model, reward_fn, prompts, settings)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def _named(value: str, option: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise typer.BadParameter(f"{value!r}: expected NAME=VALUE", param_hint=option)
    return name, rest


def _run_specs(checkpoints: list[str], runs: list[str], configs: list[str], data: list[str]) -> list[RunSpec]:
    """The runs of the command line: CHECKPOINT... with one --config FILE, or --run/--config NAME=..."""
    from axolotl_aot.tools.report import RunSpec

    if checkpoints and runs:
        raise typer.BadParameter("give checkpoints as arguments (one run) or with --run NAME=GLOB, not both")
    if not checkpoints and not runs:
        raise typer.BadParameter("no checkpoints: pass CHECKPOINT... or --run NAME=GLOB")
    if not configs:
        raise typer.BadParameter("each run needs the config it was trained with", param_hint="--config")
    if checkpoints:
        if len(configs) != 1:
            raise typer.BadParameter(
                "one run (CHECKPOINT... arguments) takes one config", param_hint="--config"
            )
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(configs[0]).stem)
        specs = {name: RunSpec(name, Path(configs[0]), list(checkpoints))}
    else:
        specs = {}
        for value in runs:
            name, pattern = _named(value, "--run")
            specs.setdefault(name, RunSpec(name, Path()))
            specs[name].patterns.append(pattern)
        given: set[str] = set()
        for value in configs:
            name, path = _named(value, "--config")
            if name not in specs or name in given:
                problem = "is not a --run name" if name not in specs else "has two configs"
                raise typer.BadParameter(f"{name!r} {problem}", param_hint="--config")
            specs[name].config = Path(path)
            given.add(name)
        if missing := [name for name in specs if name not in given]:
            raise typer.BadParameter(f"no config for run(s) {', '.join(missing)}", param_hint="--config")
    if len(data) == 1 and data[0].partition("=")[0] not in specs:
        for spec in specs.values():
            spec.data = Path(data[0])
    else:
        for value in data:
            name, path = _named(value, "--data")
            if name not in specs:
                raise typer.BadParameter(f"{name!r} is not a run name", param_hint="--data")
            specs[name].data = Path(path)
    return list(specs.values())


def _print_checkpoint(item: CheckpointReport, run: str | None) -> None:
    stats = item.rewards
    prefix = f"{run}: " if run else ""
    table = Table(
        title=f"{prefix}{item.checkpoint}  ({item.n_pos} positive, {item.n_neg} negative)",
        title_justify="left",
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


def _print_trend(runs: list[RunReport]) -> None:
    from axolotl_aot.tools.report import checkpoint_label

    table = Table(title="over training" if len(runs) == 1 else "runs side by side", title_justify="left")
    table.add_column("run", no_wrap=True)
    table.add_column("checkpoint", no_wrap=True)
    for column in ("violation", "win rate", "min margin", "log-prob violation", "pair acc."):
        table.add_column(column, justify="right")
    for run in runs:
        reference = run.checkpoints[0].ref_logp_violation
        table.add_row(f"{run.name} ({run.method})", "reference", "-", "-", "-", f"{reference:.3f}", "-")
        for item in run.checkpoints:
            accuracy = f"{item.pair_accuracy:.3f}" if item.pair_accuracy is not None else "-"
            table.add_row(
                f"{run.name} ({run.method})",
                checkpoint_label(item, run),
                f"{item.rewards.violation_fraction:.3f}",
                f"{item.rewards.win_rate:.3f}",
                f"{item.rewards.min_quantile_margin:+.3f}",
                f"{item.logp_violation:.3f}",
                accuracy,
            )
    console.print(table)


def _print_generation(runs: list[RunReport]) -> None:
    """Every checkpoint's samples against its reference's: the table of --generate."""
    from axolotl_aot.tools.report import checkpoint_label

    first = runs[0].generation_setup
    settings = first["settings"]
    table = Table(
        title=f"generations: {settings['samples']} samples per prompt, "
        f"temperature {settings['temperature']:g}, reward {first['reward']}",
        title_justify="left",
    )
    several = len(runs) > 1
    if several:
        table.add_column("run", no_wrap=True)
    table.add_column("checkpoint", no_wrap=True)
    for column in ("reward (ref.)", "win rate", "violation", "KL / token", "n"):
        table.add_column(column, justify="right", no_wrap=True)
    for run in runs:
        for item in run.checkpoints:
            stats = item.generation
            error = f"±{stats.kl_standard_error:.3f}" if stats.kl_standard_error is not None else ""
            table.add_row(
                *([f"{run.name} ({run.method})"] if several else []),
                checkpoint_label(item, run),
                f"{stats.reward_mean:+.3f} ({stats.reference_reward_mean:+.3f})",
                f"{stats.win_rate:.3f}",
                f"{stats.violation_fraction:.3f}",
                f"{stats.kl_per_token:.3f}{error}",
                str(stats.samples),
            )
    console.print(table)
    console.print(
        "reward: mean over the samples (ref.: the reference's); win rate: P(a checkpoint sample's reward "
        "beats a reference sample's on the same prompt), ties half; violation: of the checkpoint's reward "
        "distribution against the reference's (0 = it dominates); n: samples. Every sample: "
        f"{Path(first['reference_samples']).parent}",
        highlight=False,
        style="dim",
    )
