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
writes ``report.json`` and the plots. With a ``GenerationRequest`` (``--generate``) each
checkpoint and its reference are also judged by their own samples (``tools.generation``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from axolotl_aot.integration import compat
from axolotl_aot.integration.beta import TRL_BETA, beta
from axolotl_aot.integration.checkpoints import checkpoint_step
from axolotl_aot.integration.modes import data_mode
from axolotl_aot.tools.generation import (
    GenerationJudge,
    SamplingSettings,
    load_prompts,
    load_reward,
    reference_view,
)
from axolotl_aot.tools.report.discover import RunSpec, check_data, check_inputs
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
    "GenerationRequest",
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
    """What ``run_report`` tells its caller while it scores and samples (``aot-cli report`` shows bars)."""

    def checkpoint_started(self, run: str, checkpoint: Path) -> None: ...

    def batch_done(self, done: int, total: int) -> None: ...

    def sampling_started(self, run: str, model: str, prompts: int) -> None: ...

    def checkpoint_done(self, run: str, checkpoint: Path) -> None: ...


@dataclass(frozen=True)
class GenerationRequest:
    """``--generate``: sample ``settings`` on ``prompts`` (None: each run's evaluation rows) and score
    the samples with ``reward_model`` or ``reward_fn`` (exactly one)."""

    reward_model: str | None = None
    reward_fn: str | None = None
    prompts: Path | None = None
    settings: SamplingSettings = field(default_factory=SamplingSettings)

    def __post_init__(self) -> None:
        if (self.reward_model is None) == (self.reward_fn is None):
            raise ValueError(
                "--generate needs one reward: --reward-model PATH_OR_ID or --reward-fn MODULE:FUNCTION"
            )
        if self.settings.samples < 2:
            raise ValueError(
                "--samples must be at least 2: the win rate compares independently drawn samples"
            )

    def check_prompts(self) -> None:
        """The prompt file, before anything is loaded."""
        if self.prompts is not None:
            check_data(Path(self.prompts), what="prompts")


def run_report(
    specs: list[RunSpec],
    out: Path,
    *,
    ref: str | None = None,
    force_ref: bool = False,
    batch_size: int = 16,
    max_samples: int | None = None,
    progress: Progress | None = None,
    generation: GenerationRequest | None = None,
) -> tuple[list[RunReport], list[Path]]:
    """Score every run's checkpoints and write ``report.json`` and the plots to ``out``.

    Every input is checked first (``check_inputs``, and that each checkpoint's reference is the
    model it was trained from unless ``force_ref``: ``reference_problem``), then every run's config
    and evaluation rows (and with ``generation``: each run's prompts, at most ``max_samples``, then
    the reward) are loaded, and only then is the first checkpoint scored. Returns the runs
    and the plot paths. With ``progress`` (the caller shows its own), the libraries' progress bars
    are off meanwhile.
    """
    checkpoints = check_inputs(specs, out)
    if generation is not None:
        generation.check_prompts()
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
            prompts = None
            if generation is not None:
                tokenizer = compat.load_tokenizer(cfg)
                prompts = (load_prompts(cfg, tokenizer, generation.prompts, max_samples), tokenizer)
            # --generate on prompts alone: no held-out rows to score
            rows = cfg.test_datasets or cfg.val_set_size or generation is None
            prepared.append(
                (spec, paths, cfg, load_eval_dataset(cfg, max_samples) if rows else None, prompts)
            )
        reward = None
        if generation is not None:  # a reward model loads once every input is known to be good
            reward = load_reward(generation.reward_model, generation.reward_fn, device, batch_size)
        runs = []
        for spec, paths, cfg, dataset, prompts in prepared:
            judge = None
            if prompts is not None:
                judge = GenerationJudge(prompts[0], reward, generation.settings, prompts[1])
            runs.append(_report_run(spec, paths, cfg, dataset, judge, ref, batch_size, device, out, progress))
    return runs, write_outputs(runs, out)


def _report_run(
    spec: RunSpec,
    paths: list[Path],
    cfg: Any,
    dataset: Any | None,
    judge: GenerationJudge | None,
    ref: str | None,
    batch_size: int,
    device: str,
    out: Path,
    progress: Progress | None,
) -> RunReport:
    """One run's checkpoints scored on ``dataset`` (None: not scored) and with a ``judge`` sampled, one
    checkpoint at a time."""
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
        if dataset is None:
            report = CheckpointReport(str(path), checkpoint_step(path))
        else:
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
            cost, smoothing = cfg.aot_cost or "logistic", cfg.aot_label_smoothing or 0.0
            report = summarize(path, scores, run_beta, cost, smoothing, generating=judge is not None)
        if judge is not None:
            if result.reference_sampled is None:  # the reference is the same for every checkpoint
                _listen(judge, progress, spec.name, "reference")
                with reference_view(model, reference) as reference_model:
                    result.reference_sampled = judge.generate(reference_model)
                result.generation_setup = {"reward": judge.reward.name, "settings": asdict(judge.settings)}
            _listen(judge, progress, spec.name, path.name)
            report.generation, report.sampled = judge.judge(model, reference, result.reference_sampled)
        del model, reference  # one checkpoint's models in memory at a time
        result.checkpoints.append(report)
        if progress is not None:
            progress.checkpoint_done(spec.name, path)
    return result


def _listen(judge: GenerationJudge, progress: Progress | None, run: str, model: str) -> None:
    """``progress`` hears of the judge's sampling of ``model``: the prompts sampled so far."""
    if progress is None:
        judge.on_batch = None
        return
    progress.sampling_started(run, model, len(judge.prompts))
    done = 0

    def on_batch(prompts: int) -> None:
        nonlocal done
        done += prompts
        progress.batch_done(done, len(judge.prompts))

    judge.on_batch = on_batch


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
