"""Score checkpoints on an evaluation set: ``aot-cli report``.

Checkpoints come in runs, each with its own training config: AOT (``rl: aot``,
``aot_unpaired``) or another preference method axolotl trains (``dpo``, ``ipo``, ``simpo``,
``kto``), so that a baseline and an AOT run are scored on the same rows, side by side.
For each checkpoint (a full model folder or a PEFT adapter folder) the evaluation rows get
the reward r = log pi_ckpt(y|x) - log pi_ref(y|x) (summed completion log-probs), and the
report says how far the positive rewards are from dominating the negative ones
(``dominance``).

The pipeline is ``run_report`` (what ``aot-cli report`` runs), in four steps, one module each:
``discover`` checks every path and finds each run's checkpoints before axolotl, TRL or
transformers are imported; ``load`` reads each run's config, evaluation rows and models;
``score`` scores the rows through the AOT trainer; ``render`` summarises each checkpoint and
writes ``report.json`` and the plots.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import torch

from axolotl_aot.integration.beta import TRL_BETA, beta
from axolotl_aot.integration.modes import data_mode
from axolotl_aot.tools.report.discover import RunSpec, check_inputs
from axolotl_aot.tools.report.load import (
    config_base_model,
    load_eval_dataset,
    load_models,
    load_report_config,
    method,
)
from axolotl_aot.tools.report.reference import reference_problem
from axolotl_aot.tools.report.render import (
    CheckpointReport,
    RunReport,
    checkpoint_label,
    summarize,
    write_outputs,
)
from axolotl_aot.tools.report.score import score

__all__ = [
    "CheckpointReport",
    "Progress",
    "RunReport",
    "RunSpec",
    "check_inputs",
    "checkpoint_label",
    "load_eval_dataset",
    "load_models",
    "load_report_config",
    "reference_problem",
    "run_report",
    "score",
    "summarize",
    "write_outputs",
]


class Progress(Protocol):
    """What ``run_report`` tells its caller while it scores (``aot-cli report`` shows a bar)."""

    def checkpoint_started(self, run: str, checkpoint: Path) -> None: ...

    def batch_done(self, done: int, total: int) -> None: ...

    def checkpoint_done(self, run: str, checkpoint: Path) -> None: ...


def run_report(
    specs: list[RunSpec],
    out: Path,
    *,
    ref: str | None = None,
    force_ref: bool = False,
    batch_size: int = 16,
    max_samples: int | None = None,
    progress: Progress | None = None,
) -> tuple[list[RunReport], list[Path]]:
    """Score every run's checkpoints and write ``report.json`` and the plots to ``out``.

    Every input is checked first (``check_inputs``, and that each checkpoint's reference is the
    model it was trained from unless ``force_ref``: ``reference_problem``), then every run's config
    and evaluation rows are loaded, and only then is the first checkpoint scored. Returns the runs
    and the plot paths. With ``progress`` (the caller shows its own), the libraries' progress bars
    are off meanwhile.
    """
    checkpoints = check_inputs(specs, out)
    for spec, paths in zip(specs, checkpoints, strict=True):
        base = config_base_model(spec.config)
        for path in [] if force_ref else paths:
            if problem := reference_problem(path, base, ref):
                raise ValueError(problem)
    with _library_progress_bars(enabled=progress is None):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        prepared = []
        for spec, paths in zip(specs, checkpoints, strict=True):
            cfg = load_report_config(spec.config, spec.data, ref)
            prepared.append((spec, paths, cfg, load_eval_dataset(cfg, max_samples)))
        runs = []
        for spec, paths, cfg, dataset in prepared:
            run_beta = float(beta(cfg, default=TRL_BETA)[1])
            result = RunReport(
                spec.name,
                str(spec.config),
                str(spec.data) if spec.data else None,
                method(cfg),
                data_mode(cfg).name,
                run_beta,
            )
            for path in paths:
                if progress is not None:
                    progress.checkpoint_started(spec.name, path)
                model, reference, tokenizer = load_models(path, cfg, ref, device)
                scores = score(
                    model,
                    reference,
                    tokenizer,
                    dataset,
                    cfg,
                    batch_size=batch_size,
                    device=device,
                    on_batch=progress.batch_done if progress is not None else None,
                )
                del model, reference  # one checkpoint's models in memory at a time
                cost, smoothing = cfg.aot_cost or "logistic", cfg.aot_label_smoothing or 0.0
                result.checkpoints.append(summarize(path, scores, run_beta, cost, smoothing))
                if progress is not None:
                    progress.checkpoint_done(spec.name, path)
            runs.append(result)
    return runs, write_outputs(runs, out)


@contextlib.contextmanager
def _library_progress_bars(*, enabled: bool) -> Iterator[None]:
    """datasets' and transformers' own progress bars off for the duration unless ``enabled``."""
    import datasets
    from transformers.utils import logging as hf_logging

    was = datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    if not enabled:
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            datasets.enable_progress_bars()
        if was[1]:
            hf_logging.enable_progress_bar()
