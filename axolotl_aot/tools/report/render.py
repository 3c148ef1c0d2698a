"""What a report says about each checkpoint, and the files it writes.

``summarize`` turns a checkpoint's scores into dominance statistics, the AOT loss under each
cost, the metrics training logs as ``eval_*`` (``evaluation.eval_metrics``, as the trainers log
them) and a verdict. A reference scores every reward as exactly 0, so as a baseline the summary
also gives the dominance of the log-probs of positives over negatives under the checkpoint and
under the reference: about 0.5 violation for a model that has learned nothing. ``write_outputs``
writes ``report.json`` and the plots (reward CDFs and quantile functions per checkpoint, the runs
overlaid, the violation fraction over training), and with ``--generate`` every sample to
``samples/`` and the plots of the sampled rewards.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axolotl_aot.integration.checkpoints import checkpoint_step
from axolotl_aot.integration.evaluation import Scores, aot_loss, eval_metrics
from axolotl_aot.ot.dominance import DominanceStats, dominance_stats
from axolotl_aot.ot.losses import COSTS
from axolotl_aot.tools.generation import Generations, GenerationStats

# What implicit-reward dominance does and does not tell (docs/evaluating.md, "What dominance tells").
RANKING_ONLY = "This is how the checkpoint ranks given completions, not how well it writes"


@dataclass
class CheckpointReport:
    """One checkpoint's summary, as ``report.json`` holds it; its raw ``scores`` only feed the plots.

    Without evaluation rows (``--generate`` on prompts alone) the held-out fields are None and only
    ``generation`` is filled.
    """

    checkpoint: str
    step: int | None
    paired: bool | None = None
    n_pos: int = 0
    n_neg: int = 0
    rewards: DominanceStats | None = None
    aot_loss: dict[str, float] = field(default_factory=dict)
    logp_violation: float | None = None
    ref_logp_violation: float | None = None
    pair_accuracy: float | None = None
    mean_margin: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # as training logs them after eval_
    verdict: str = ""
    plot: str | None = None
    generation: GenerationStats | None = None  # with --generate: its samples against the reference's
    generation_plot: str | None = None
    samples_file: str | None = None
    scores: Scores | None = field(default=None, repr=False)
    sampled: Generations | None = field(default=None, repr=False)  # with --generate: its samples

    def as_dict(self) -> dict[str, Any]:
        data = {key: value for key, value in asdict(self).items() if key not in ("scores", "sampled")}
        if self.generation is None:
            for key in ("generation", "generation_plot", "samples_file"):
                data.pop(key)
        return data


@dataclass
class RunReport:
    """The checkpoints of one training run, scored under its own config."""

    name: str
    config: str
    data: str | None
    method: str  # rl of the config: aot, aot_unpaired, dpo, ipo, simpo or kto
    mode: str  # paired or unpaired rows
    beta: float
    checkpoints: list[CheckpointReport] = field(default_factory=list)
    # with --generate: the reward and the sampling settings, and the reference's samples
    generation_setup: dict[str, Any] | None = None
    reference_sampled: Generations | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        data = {
            key: value
            for key, value in asdict(self).items()
            if key not in ("name", "generation_setup", "reference_sampled")
        }
        data["checkpoints"] = [c.as_dict() for c in self.checkpoints]
        if self.generation_setup is not None:
            # The run's final checkpoint's statistics, with how they were sampled; every
            # checkpoint's own are in its "generation".
            data["generation"] = {**self.generation_setup, **self.checkpoints[-1].generation.as_dict()}
        return data


def checkpoint_label(report: CheckpointReport, run: RunReport) -> str:
    """``step N``; ``final (NAME)`` for the final model of an output folder reported with its
    checkpoints; else the folder's name."""
    if report.step is not None:
        return f"step {report.step}"
    name = Path(report.checkpoint).name
    parents = {str(Path(other.checkpoint).parent) for other in run.checkpoints}
    return f"final ({name})" if report.checkpoint in parents else name


def summarize(
    checkpoint: Path,
    scores: Scores,
    beta: float,
    cost: str = "logistic",
    label_smoothing: float = 0.0,
    generating: bool = False,
) -> CheckpointReport:
    """Dominance statistics, AOT losses under each cost, the metrics training logs (under the
    run's ``cost`` and ``label_smoothing``) and the verdict for one checkpoint (``generating``: its
    samples are judged too)."""
    stats = dominance_stats(scores.reward_pos, scores.reward_neg)
    losses = {name: aot_loss(scores, beta=beta, cost=name) for name in COSTS}
    if scores.paired:
        margins = scores.reward_pos - scores.reward_neg
        accuracy, mean_margin = float((margins > 0).mean()), float(margins.mean())
    else:
        accuracy = mean_margin = None
    violated = stats.violation_fraction
    verdict = (
        (
            "dominance holds: positive rewards dominate negative rewards at every quantile"
            if violated == 0
            else f"dominance violated on {violated:.0%} of quantiles"
        )
        + f" of the held-out rows. {RANKING_ONLY}"
        + ("." if generating else ": judge its own samples with --generate.")
    )
    return CheckpointReport(
        checkpoint=str(checkpoint),
        step=checkpoint_step(checkpoint),
        paired=scores.paired,
        n_pos=len(scores.reward_pos),
        n_neg=len(scores.reward_neg),
        rewards=stats,
        aot_loss=losses,
        logp_violation=dominance_stats(scores.logp_pos, scores.logp_neg).violation_fraction,
        ref_logp_violation=dominance_stats(scores.ref_logp_pos, scores.ref_logp_neg).violation_fraction,
        pair_accuracy=accuracy,
        mean_margin=mean_margin,
        metrics=eval_metrics(scores, beta=beta, cost=cost, label_smoothing=label_smoothing),
        verdict=verdict,
        scores=scores,
    )


def write_outputs(runs: list[RunReport], out: Path) -> list[Path]:
    """``report.json`` (keyed by run) and the PNG plots in ``out``; returns the plot paths.

    Plots are named by run and checkpoint, so that no checkpoint's plot overwrites another's.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    plots = []
    for run in runs:
        used: set[str] = set()
        for report in run.checkpoints:
            name = stem = f"{run.name}_{Path(report.checkpoint).name}"
            for copy in range(2, len(run.checkpoints) + 2):
                if name not in used:
                    break
                name = f"{stem}-{copy}"
            used.add(name)
            if report.scores is not None:
                path = out / f"{name}_rewards.png"
                _plot_rewards(plt, report, path)
                report.plot = str(path)
                plots.append(path)
            if report.sampled is not None:
                path = out / f"{name}_generation.png"
                _plot_generation(plt, report, run.reference_sampled, path)
                report.generation_plot = str(path)
                plots.append(path)
                report.samples_file = str(
                    _write_samples(report.sampled, out / "samples" / f"{name}_samples.jsonl")
                )
        if run.reference_sampled is not None:
            path = _write_samples(run.reference_sampled, out / "samples" / f"{run.name}_reference.jsonl")
            run.generation_setup["reference_samples"] = str(path)
    scored = [run for run in runs if run.checkpoints[0].scores is not None]
    if len(scored) > 1:
        path = out / "runs_rewards.png"
        _plot_runs(plt, scored, path)
        plots.append(path)
    if len(scored) > 1 or (scored and len(scored[0].checkpoints) > 1):
        path = out / "violation_trend.png"
        _plot_trend(plt, scored, path)
        plots.append(path)
    if any(run.generation_setup is not None for run in runs):
        path = out / "generation_frontier.png"
        _plot_frontier(plt, runs, path)
        plots.append(path)
    (out / "report.json").write_text(
        json.dumps({"runs": {run.name: run.as_dict() for run in runs}}, indent=2, default=str)
    )
    return plots


def _step_curves(cdf: Any, quantiles: Any, values: np.ndarray, **style: Any) -> None:
    """The empirical CDF and the quantile function of ``values``."""
    ordered = np.sort(values)
    levels = np.arange(1, len(ordered) + 1) / len(ordered)
    cdf.step(ordered, levels, where="post", **style)
    quantiles.step(levels, ordered, where="pre", **style)


def _finish(
    fig: Any,
    cdf: Any,
    quantiles: Any,
    title: str,
    path: Path,
    reward: str = "reward  log pi - log pi_ref",
    above: str = "positive",
) -> None:
    cdf.set(title="empirical CDF of rewards", xlabel=reward, ylabel="F(x)")
    quantiles.set(title=f"quantile functions ({above} above = dominance)", xlabel="t", ylabel="Q(t)")
    for axis in (cdf, quantiles):
        axis.legend()
        axis.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _plot_rewards(plt: Any, report: CheckpointReport, path: Path) -> None:
    scores = report.scores
    fig, (cdf, quantiles) = plt.subplots(1, 2, figsize=(10, 4))
    _step_curves(cdf, quantiles, scores.reward_pos, label="positive", color="tab:green")
    _step_curves(cdf, quantiles, scores.reward_neg, label="negative", color="tab:red")
    title = f"{Path(report.checkpoint).name}: violation fraction {report.rewards.violation_fraction:.3f}"
    _finish(fig, cdf, quantiles, title, path)
    plt.close(fig)


def _plot_runs(plt: Any, runs: list[RunReport], path: Path) -> None:
    """The last checkpoint of every run overlaid: positives solid, negatives dashed, one color a run."""
    fig, (cdf, quantiles) = plt.subplots(1, 2, figsize=(10, 4))
    for index, run in enumerate(runs):
        scores, color = run.checkpoints[-1].scores, f"C{index}"
        _step_curves(cdf, quantiles, scores.reward_pos, label=f"{run.name} positive", color=color)
        _step_curves(cdf, quantiles, scores.reward_neg, label=f"{run.name} negative", color=color, ls="--")
    _finish(fig, cdf, quantiles, "last checkpoint of each run", path)
    plt.close(fig)


def _trend_steps(run: RunReport) -> list[int]:
    """The x of each checkpoint: its step; a final model (no step) at the run's last step seen."""
    steps, last = [], None
    for position, report in enumerate(run.checkpoints):
        step = report.step if report.step is not None else (last if last is not None else position)
        last = step
        steps.append(step)
    return steps


def _plot_trend(plt: Any, runs: list[RunReport], path: Path) -> None:
    fig, axis = plt.subplots(figsize=(6, 4))
    for index, run in enumerate(runs):
        steps = _trend_steps(run)
        violations = [r.rewards.violation_fraction for r in run.checkpoints]
        axis.plot(steps, violations, marker="o", color=f"C{index}", label=f"{run.name} rewards")
        logps = [r.logp_violation for r in run.checkpoints]
        axis.plot(steps, logps, marker="s", color=f"C{index}", ls=":", label=f"{run.name} log-probs")
    for index, run in enumerate(runs):
        reference = run.checkpoints[0].ref_logp_violation
        axis.axhline(reference, color=f"C{index}", ls="--", alpha=0.5, label=f"{run.name} reference")
    axis.set(
        title="violation fraction over training",
        xlabel="checkpoint step",
        ylabel="violation fraction",
        ylim=(0, 1),
    )
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _write_samples(generations: Generations, path: Path) -> Path:
    """Every sample of one model as JSON lines (``Generations.write``); a checkpoint's file ends in
    ``_samples.jsonl``, the reference's in ``_reference.jsonl``, so that the two never collide."""
    path.parent.mkdir(exist_ok=True)
    generations.write(path)
    return path


def _plot_generation(plt: Any, report: CheckpointReport, reference_sampled: Generations, path: Path) -> None:
    """The rewards of the checkpoint's samples and of the reference's: CDFs and quantile functions."""
    ours, reference = report.sampled.rewards, reference_sampled.rewards
    fig, (cdf, quantiles) = plt.subplots(1, 2, figsize=(10, 4))
    _step_curves(cdf, quantiles, ours, label="checkpoint samples", color="tab:blue")
    _step_curves(cdf, quantiles, reference, label="reference samples", color="tab:gray", ls="--")
    stats = report.generation
    title = (
        f"{Path(report.checkpoint).name}: win rate {stats.win_rate:.3f}, "
        f"KL {stats.kl_per_token:.4f}/token, violation {stats.violation_fraction:.3f}"
    )
    _finish(fig, cdf, quantiles, title, path, reward="reward of a sample", above="checkpoint")
    plt.close(fig)


def _plot_frontier(plt: Any, runs: list[RunReport], path: Path) -> None:
    """Mean sampled reward against sampled KL per token: a line per run through its checkpoints,
    its reference a star at KL 0; horizontal bars: one standard error of the KL."""
    fig, axis = plt.subplots(figsize=(6, 4.5))
    for index, run in enumerate(runs):
        judged = [r for r in run.checkpoints if r.generation is not None]
        if not judged:
            continue
        color = f"C{index}"
        kl = [r.generation.kl_per_token for r in judged]
        errors = [r.generation.kl_standard_error or 0.0 for r in judged]
        rewards = [r.generation.reward_mean for r in judged]
        axis.errorbar(
            kl, rewards, xerr=errors, marker="o", color=color, capsize=2, label=f"{run.name} ({run.method})"
        )
        for report, x, y in zip(judged, kl, rewards, strict=True):
            label = checkpoint_label(report, run)
            axis.annotate(label, (x, y), fontsize=6, alpha=0.7, xytext=(3, 3), textcoords="offset points")
        reference = judged[0].generation.reference_reward_mean
        axis.plot([0.0], [reference], marker="*", markersize=12, color=color, ls="none")
    axis.set(
        title="generations: reward against divergence (star: reference)",
        xlabel="sampled KL(checkpoint || reference) per token",
        ylabel="mean reward of samples",
    )
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
