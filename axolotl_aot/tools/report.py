"""Score checkpoints on an evaluation set: ``aot-cli report``.

Checkpoints come in runs, each with its own training config: AOT (``rl: aot``,
``aot_unpaired``) or another preference method axolotl trains (``dpo``, ``ipo``, ``simpo``,
``kto``), so that a baseline and an AOT run are scored on the same rows, side by side.
For each checkpoint (a full model folder or a PEFT adapter folder) the evaluation rows get
the reward r = log pi_ckpt(y|x) - log pi_ref(y|x) (summed completion log-probs), and the
report says how far the positive rewards are from dominating the negative ones
(``dominance``). Rows are formatted by axolotl's own dataset types from the training
config and tokenized, collated and scored by the AOT trainer class itself, so the numbers
are the ones training computes. For adapters the reference is the adapter-disabled base
(one model in memory); otherwise ``ref`` or the config's ``base_model``.

The metrics training logs as ``eval_*`` come from ``evaluation.eval_metrics``, as in the
trainers. For methods without a reference model (SimPO) the reference is the base model
all the same: the reward is how far training moved the log-probs.

A reference scores every reward as exactly 0, so as a baseline the report also gives the
dominance of the log-probs of positives over negatives under the checkpoint and under
the reference: about 0.5 violation for a model that has learned nothing.

The pipeline is ``run_report`` (what ``aot-cli report`` runs): it checks every path first
(``check_inputs``: the output folder, the checkpoints, the configs and evaluation files),
before it imports axolotl, TRL or transformers, then scores each run's checkpoints and writes
``report.json`` and the plots. An output folder given as a checkpoint stands for its
``checkpoint-N`` folders, in step order, and its final model last.
"""

from __future__ import annotations

import contextlib
import glob
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

# Light imports only (torch, numpy, pydantic): axolotl, TRL, transformers and datasets are
# imported where they are used, after ``check_inputs``.
from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.evaluation import Scores, aot_loss, eval_metrics
from axolotl_aot.integration.logps import TokenStats
from axolotl_aot.integration.modes import BY_NAME, OTHER_METHODS, Mode
from axolotl_aot.integration.sampler import check_both_labels
from axolotl_aot.integration.training_args import config_settings
from axolotl_aot.ot.dominance import DominanceStats, dominance_stats
from axolotl_aot.ot.losses import COSTS
from axolotl_aot.tools.records import iter_records
from axolotl_aot.tools.saved_models import check_loaded, unsaved_weights

DATA_SUFFIX_TYPES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
# Preference methods the report scores besides AOT, by the rows their dataset types produce.
TRL_BETA = 0.1  # TRL's default beta, for configs that set none
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
CHECKPOINT = re.compile(r"checkpoint-(\d+)")


@dataclass
class RunSpec:
    """One run to report: its checkpoints (folders or globs), the config it was trained with, and
    the evaluation rows (None: the config's ``test_datasets`` or ``val_set_size``)."""

    name: str
    config: Path
    patterns: list[str] = field(default_factory=list)
    data: Path | None = None


class Progress(Protocol):
    """What ``run_report`` tells its caller while it scores (``aot-cli report`` shows a bar)."""

    def checkpoint_started(self, run: str, checkpoint: Path) -> None: ...

    def batch_done(self, done: int, total: int) -> None: ...

    def checkpoint_done(self, run: str, checkpoint: Path) -> None: ...


@dataclass
class CheckpointReport:
    checkpoint: str
    step: int | None
    paired: bool
    n_pos: int
    n_neg: int
    rewards: DominanceStats
    aot_loss: dict[str, float]
    logp_violation: float
    ref_logp_violation: float
    pair_accuracy: float | None = None
    mean_margin: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # as training logs them after eval_
    verdict: str = ""
    plot: str | None = None
    scores: Scores | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("scores")
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

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("name")
        data["checkpoints"] = [c.as_dict() for c in self.checkpoints]
        return data


def check_run_name(name: str) -> str:
    """A run name is used in file names: letters, digits, '.', '_' and '-'."""
    if not RUN_NAME.fullmatch(name):
        raise ValueError(
            f"run name {name!r}: use letters, digits, '.', '_' and '-' (it names the plot files)"
        )
    return name


def prepare_out(out: Path) -> None:
    """Create the output folder before anything is scored, so that a bad ``--out`` fails first."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"--out {out}: cannot create the folder ({err.strerror}); pass a writable folder"
        ) from None


def method(cfg: Any) -> str:
    """The ``rl`` the config trains: ``aot``/``aot_unpaired`` (rewritten by the plugin) or axolotl's own."""
    if cfg.aot_mode:
        return BY_NAME[cfg.aot_mode].rl
    return str(getattr(cfg.rl, "value", cfg.rl))


def data_mode_of(cfg: Any) -> Mode:
    """The mode whose rows the config's dataset types produce (for another method: its row family)."""
    return BY_NAME[cfg.aot_mode] if cfg.aot_mode else OTHER_METHODS[method(cfg)]


def data_mode(cfg: Any) -> str:
    """``paired`` or ``unpaired``: the rows the config's dataset types produce."""
    return data_mode_of(cfg).name


def run_beta(cfg: Any) -> float:
    """The beta the run trained with: ``trl.beta``, ``rl_beta`` or TRL's default."""
    return float((cfg.trl or {}).get("beta") or cfg.rl_beta or TRL_BETA)


def resolve_checkpoints(patterns: list[str]) -> list[Path]:
    """Expand globs; each match must be a model or adapter folder, or a training's output folder
    holding ``checkpoint-N`` folders (with or without its final model): those, then the final
    model. Ordered by training step, the folders without a step (final models) last."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not matches:
            raise ValueError(f"{pattern}: no checkpoint matches")
        for match in map(Path, matches):
            if not match.is_dir():
                raise ValueError(f"{match}: not a checkpoint folder (no such folder)")
            saved = saved_checkpoints(match)
            if not saved and not is_checkpoint(match):
                raise ValueError(
                    f"{match} is not a checkpoint: it has neither config.json nor adapter_config.json"
                )
            for checkpoint in saved:
                if not is_checkpoint(checkpoint):
                    raise ValueError(
                        f"{checkpoint} is not a checkpoint: it has neither config.json nor "
                        f"adapter_config.json; pass the other folders of {match} by name"
                    )
            found += saved + ([match] if is_checkpoint(match) else [])
    return sorted(dict.fromkeys(found), key=lambda p: (checkpoint_step(p) is None, checkpoint_step(p) or 0))


def is_checkpoint(path: Path) -> bool:
    """A model folder (``config.json``) or an adapter folder (``adapter_config.json``)."""
    return (path / "config.json").exists() or (path / "adapter_config.json").exists()


def saved_checkpoints(folder: Path) -> list[Path]:
    """The ``checkpoint-N`` folders a training saved in its output ``folder``, by step."""
    if checkpoint_step(folder) is not None:
        return []  # a checkpoint itself: its subfolders are not checkpoints of a run
    inner = [
        path for path in folder.glob("checkpoint-*") if path.is_dir() and checkpoint_step(path) is not None
    ]
    return sorted(inner, key=checkpoint_step)


def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT.fullmatch(path.name)
    return int(match.group(1)) if match else None


def load_report_config(config: str | Path, data: str | Path | None, ref: str | None = None) -> Any:
    """The training config, validated and normalised as axolotl does, with ``data`` as the test set
    and ``ref`` (when given) as the base model."""
    import yaml
    from axolotl.utils.config import normalize_cfg_datasets, normalize_config
    from axolotl.utils.dict import DictDefault

    from axolotl_aot.tools.config import validate_raw

    with open(config, encoding="utf-8") as file:
        raw = yaml.safe_load(file)
    if ref is not None:
        raw["base_model"] = ref
    if data is not None:
        raw["test_datasets"] = [_data_entry(Path(data), raw)]
        raw.pop("val_set_size", None)
    # An evaluation set is small: no worker processes, and no copy cached in the training's
    # dataset_prepared_path.
    raw.update(dataset_num_proc=1, skip_prepare_dataset=True)
    cfg = validate_raw(raw, config)
    if not cfg.aot_mode and method(cfg) not in OTHER_METHODS:
        raise ValueError(
            f"{config}: rl: {method(cfg)} is not a preference method the report scores; "
            f"use a config with rl: aot, aot_unpaired, {', '.join(OTHER_METHODS)}"
        )
    normalize_config(cfg)
    normalize_cfg_datasets(cfg)
    if data is not None:
        cfg.test_datasets = [DictDefault(entry) for entry in cfg.test_datasets]
    return cfg


def check_data(path: Path) -> None:
    """An evaluation file or folder that exists, of a type the report reads, with rows."""
    if not path.exists():
        raise ValueError(f"{path}: no such evaluation file or folder")
    if path.is_file() and path.suffix not in DATA_SUFFIX_TYPES:
        raise ValueError(f"{path}: unsupported file type; use {', '.join(DATA_SUFFIX_TYPES)}")
    if next(iter_records(path), None) is None:
        raise ValueError(f"the evaluation set is empty: {path} has no rows")


def _data_entry(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """A test-dataset entry for ``path`` formatted with the type of the config's first dataset."""
    check_data(path)
    entry: dict[str, Any] = {"path": str(path.resolve()), "split": "train"}
    if path.is_file():
        entry["ds_type"] = DATA_SUFFIX_TYPES[path.suffix]
    datasets = raw.get("datasets") or [{}]
    if datasets[0].get("type") is not None:
        entry["type"] = datasets[0]["type"]
    return entry


def load_eval_dataset(cfg: Any, max_samples: int | None) -> Any:
    """The evaluation rows after axolotl's dataset type, as training formats them."""
    from axolotl.utils.data.rl import prepare_preference_datasets

    from axolotl_aot.integration.compat import load_split

    try:
        if cfg.test_datasets:
            dataset = load_split(cfg, split="test")
        elif cfg.val_set_size:
            from axolotl.loaders import load_tokenizer

            dataset = prepare_preference_datasets(cfg, load_tokenizer(cfg))[1]
        else:
            raise ValueError(
                "no evaluation set: pass --data FILE, or set test_datasets or val_set_size in the config"
            )
    except KeyError as err:
        raise ValueError(
            f"the evaluation data has no column {err} that its dataset type reads; "
            "check --data against the config's dataset type"
        ) from None
    mode = data_mode(cfg)
    missing = [column for column in data_mode_of(cfg).columns if column not in dataset.column_names]
    if missing:
        raise ValueError(f"the evaluation data lacks {', '.join(missing)} after formatting; rl mode {mode}")
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    if len(dataset) == 0:
        raise ValueError("the evaluation set is empty")
    if mode == "unpaired":
        check_both_labels(dataset["label"], "the evaluation set")
    return dataset


def load_models(checkpoint: Path, cfg: Any, ref: str | None, device: str) -> tuple[Any, Any, Any]:
    """(model, reference or None for adapters, tokenizer) of a checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    problem = unsaved_weights(checkpoint)
    if problem:
        raise ValueError(problem)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    is_adapter = (checkpoint / "adapter_config.json").exists()
    if is_adapter:
        from peft import PeftModel

        base_name = json.loads((checkpoint / "adapter_config.json").read_text()).get(
            "base_model_name_or_path"
        )
        base = AutoModelForCausalLM.from_pretrained(ref or cfg.base_model or base_name, dtype=dtype)
        model, reference = PeftModel.from_pretrained(base, checkpoint), None
        check_loaded(checkpoint, model)
        reference_name = ref or cfg.base_model or base_name
    else:
        model, info = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype, output_loading_info=True)
        check_loaded(checkpoint, model, info)
        reference_name = ref or cfg.base_model
        reference = AutoModelForCausalLM.from_pretrained(reference_name, dtype=dtype)
    tokenizer_source = checkpoint if (checkpoint / "tokenizer_config.json").exists() else reference_name
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    reference_tokenizer = AutoTokenizer.from_pretrained(reference_name)
    if tokenizer.get_vocab() != reference_tokenizer.get_vocab():
        raise ValueError(
            f"the tokenizer of {checkpoint} does not match the reference {reference_name}; "
            "pass the model the checkpoint was trained from with --ref"
        )
    return model, reference, tokenizer


def score(
    model: Any,
    reference: Any,
    tokenizer: Any,
    dataset: Any,
    cfg: Any,
    *,
    batch_size: int,
    device: str,
    on_batch: Callable[[int, int], None] | None = None,
) -> Scores:
    """Rewards of every evaluation row, through the AOT trainer's own tokenization and log-probs."""
    trainer = _scoring_trainer(model, reference, tokenizer, dataset, cfg, batch_size, device)
    tokenized = trainer.train_dataset
    paired = data_mode(cfg) == "paired"
    rows = _rows(tokenized, paired)
    logps, ref_logps = torch.zeros(rows, dtype=torch.float64), torch.zeros(rows, dtype=torch.float64)
    stats = TokenStats(*(torch.zeros(rows, dtype=torch.float64) for _ in TokenStats._fields))
    batches = list(_length_buckets(tokenized, batch_size, paired))
    with torch.no_grad():
        for done, indices in enumerate(batches, start=1):
            batch = trainer._prepare_inputs(trainer.data_collator([tokenized[i] for i in indices]))
            policy = trainer._completions(trainer.model, batch, policy=True)
            reference = trainer.compute_ref_log_probs(trainer._reference_model(trainer.model), batch)
            positions = torch.as_tensor(indices)
            if paired:  # the batch holds the chosen rows, then the rejected rows
                positions = torch.cat([positions, positions + len(tokenized)])
                reference = (torch.cat(reference),)
            logps[positions], ref_logps[positions] = policy.logps.double().cpu(), reference[0].double().cpu()
            for column, values in zip(stats, policy.stats, strict=True):
                column[positions] = values.double().cpu()
            if on_batch is not None:
                on_batch(done, len(batches))
    if paired:
        n = len(tokenized)
        return Scores.from_columns(True, [logps[:n], logps[n:], ref_logps[:n], ref_logps[n:]], stats)
    labels = torch.as_tensor(tokenized["label"], dtype=torch.float64)
    return Scores.from_columns(False, [logps, ref_logps, labels], stats)


def _rows(tokenized: Any, paired: bool) -> int:
    return 2 * len(tokenized) if paired else len(tokenized)


def _scoring_trainer(
    model: Any, reference: Any, tokenizer: Any, dataset: Any, cfg: Any, batch_size: int, device: str
) -> Any:
    # The trainer only scores and saves nothing, but the Trainer creates its output_dir: a
    # temporary one, removed once the trainer is built, so that no folder is left behind.
    with tempfile.TemporaryDirectory(prefix="aot-report-") as scratch:
        return _build_scoring_trainer(model, reference, tokenizer, dataset, cfg, batch_size, device, scratch)


def _build_scoring_trainer(
    model: Any,
    reference: Any,
    tokenizer: Any,
    dataset: Any,
    cfg: Any,
    batch_size: int,
    device: str,
    output_dir: str,
) -> Any:
    from axolotl_aot.integration.compat import drop_trl_ref_adapter
    from axolotl_aot.integration.factory import build_trainer

    args = {
        "output_dir": output_dir,
        "per_device_train_batch_size": batch_size,
        "per_device_eval_batch_size": batch_size,
        "report_to": [],
        "use_cpu": device == "cpu",
        "bf16": device == "cuda",
        "beta": run_beta(cfg),
        "max_length": cfg.sequence_len,
        "remove_unused_columns": False,
    }
    trainer = build_trainer(
        data_mode_of(cfg),
        model,
        reference,
        args=args,
        settings=AOTArgs.model_validate(config_settings(cfg)),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    drop_trl_ref_adapter(trainer.model)  # the reference of an adapter is its base
    return trainer


def _length_buckets(tokenized: Any, batch_size: int, paired: bool) -> Iterator[list[int]]:
    """Batches of rows of similar length, so that little compute goes to padding."""
    columns = ("prompt_ids", "chosen_ids", "rejected_ids") if paired else ("prompt_ids", "completion_ids")
    present = [c for c in columns if c in tokenized.column_names]
    lengths = [sum(len(row[c]) for c in present) for row in tokenized.select_columns(present)]
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size].tolist()


def check_inputs(specs: list[RunSpec], out: Path) -> list[list[Path]]:
    """Every path of the report, checked before anything heavy is imported or scored: ``out``
    (created), then per run its name, checkpoints, config and evaluation rows. Returns each
    run's checkpoints (``resolve_checkpoints``)."""
    if not specs:
        raise ValueError("no run to report")
    prepare_out(out)
    if len({spec.name for spec in specs}) < len(specs):
        raise ValueError("two runs have the same name")
    checkpoints = []
    for spec in specs:
        check_run_name(spec.name)
        checkpoints.append(resolve_checkpoints(spec.patterns))
        if not Path(spec.config).is_file():
            raise ValueError(f"{spec.config}: no such config file (the YAML the run was trained with)")
        if spec.data is not None:
            check_data(Path(spec.data))
    return checkpoints


def run_report(
    specs: list[RunSpec],
    out: Path,
    *,
    ref: str | None = None,
    batch_size: int = 16,
    max_samples: int | None = None,
    progress: Progress | None = None,
) -> tuple[list[RunReport], list[Path]]:
    """Score every run's checkpoints and write ``report.json`` and the plots to ``out``.

    Every input is checked first (``check_inputs``), then every run's config and evaluation rows
    are loaded, and only then is the first checkpoint scored. Returns the runs and the plot paths.
    With ``progress`` (the caller shows its own), the libraries' progress bars are off meanwhile.
    """
    checkpoints = check_inputs(specs, out)
    with _library_progress_bars(enabled=progress is None):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        prepared = []
        for spec, paths in zip(specs, checkpoints, strict=True):
            cfg = load_report_config(spec.config, spec.data, ref)
            prepared.append((spec, paths, cfg, load_eval_dataset(cfg, max_samples)))
        runs = []
        for spec, paths, cfg, dataset in prepared:
            beta = run_beta(cfg)
            result = RunReport(
                spec.name,
                str(spec.config),
                str(spec.data) if spec.data else None,
                method(cfg),
                data_mode(cfg),
                beta,
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
                result.checkpoints.append(summarize(path, scores, beta, cost, smoothing))
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


def checkpoint_label(report: CheckpointReport, run: RunReport) -> str:
    """``step N``; ``final (NAME)`` for the final model of an output folder reported with its
    checkpoints; else the folder's name."""
    if report.step is not None:
        return f"step {report.step}"
    name = Path(report.checkpoint).name
    parents = {str(Path(other.checkpoint).parent) for other in run.checkpoints}
    return f"final ({name})" if report.checkpoint in parents else name


def summarize(
    checkpoint: Path, scores: Scores, beta: float, cost: str = "logistic", label_smoothing: float = 0.0
) -> CheckpointReport:
    """Dominance statistics, AOT losses under each cost, the metrics training logs (under the
    run's ``cost`` and ``label_smoothing``) and the verdict for one checkpoint."""
    stats = dominance_stats(scores.reward_pos, scores.reward_neg)
    losses = {name: aot_loss(scores, beta=beta, cost=name) for name in COSTS}
    if scores.paired:
        margins = scores.reward_pos - scores.reward_neg
        accuracy, mean_margin = float((margins > 0).mean()), float(margins.mean())
    else:
        accuracy = mean_margin = None
    violated = stats.violation_fraction
    verdict = (
        "dominance holds: positive rewards dominate negative rewards at every quantile"
        if violated == 0
        else f"dominance violated on {violated:.0%} of quantiles"
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
            path = out / f"{name}_rewards.png"
            _plot_rewards(plt, report, path)
            report.plot = str(path)
            plots.append(path)
    if len(runs) > 1:
        path = out / "runs_rewards.png"
        _plot_runs(plt, runs, path)
        plots.append(path)
    if len(runs) > 1 or len(runs[0].checkpoints) > 1:
        path = out / "violation_trend.png"
        _plot_trend(plt, runs, path)
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


def _finish(fig: Any, cdf: Any, quantiles: Any, title: str, path: Path) -> None:
    cdf.set(title="empirical CDF of rewards", xlabel="reward  log pi - log pi_ref", ylabel="F(x)")
    quantiles.set(title="quantile functions (positive above = dominance)", xlabel="t", ylabel="Q(t)")
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
