"""Everything wrong with an AOT config, found before a GPU is rented: ``aot-cli validate``.

The YAML goes through axolotl's own pipeline with the plugin registered (``config``), so
schema errors are axolotl's. On top come the mistakes only AOT knows about: the plugin
missing or not importable, a dataset type of the wrong family for the mode, an unusual
beta, a sort too small for the paper's batch-size finding, and local dataset files that
are missing or lack what the mode needs (checked on their first rows, through axolotl's
own dataset types).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from axolotl_aot.records import is_local, iter_records

PLUGIN = "axolotl_aot.AOTPlugin"
AOT_RL = {"aot": "paired", "aot_unpaired": "unpaired"}
AOT_RL_NAME = {mode: rl for rl, mode in AOT_RL.items()}
FAMILY = {"paired": "dpo", "unpaired": "kto"}
NEEDS = {"paired": ("prompt", "chosen", "rejected"), "unpaired": ("prompt", "completion", "label")}
MIN_SORT_SIZE = 16  # paper, Figure 2 (right): quality keeps rising up to per-GPU batches of about 35
BETA_RANGE = (1e-3, 1.0)
HEAD_ROWS = 5

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    key: str  # path of the YAML key, e.g. "datasets[0].path"; "" for the whole file
    message: str


@dataclass
class Report:
    path: Path
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def add(self, severity: Severity, key: str, message: str) -> None:
        self.problems.append(Problem(severity, key, message))


def validate_file(path: str | Path, *, n_gpu: int | None = None, as_gpu: bool = False) -> Report:
    """Check one axolotl YAML; ``n_gpu`` (default: ``WORLD_SIZE`` or 1) sizes the world sort."""
    report = Report(Path(path))
    raw = _read_yaml(report)
    if raw is None:
        return report
    n_gpu = n_gpu or int(os.environ.get("WORLD_SIZE", "1"))
    mode = AOT_RL.get(raw.get("rl")) or raw.get("aot_mode")
    if mode is None:
        report.add(
            "error", "rl", f"rl is {raw.get('rl')!r}, not aot or aot_unpaired: this is not an AOT config"
        )
        return report
    if not _plugin_ready(raw, report):
        return report
    cfg = _axolotl_validate(raw, report, as_gpu=as_gpu, n_gpu=n_gpu)
    _check_dataset_types(raw, mode, report)
    if cfg is not None:
        _check_beta(cfg, report)
        _check_sort_size(cfg, mode, n_gpu, report)
        check_evaluation(cfg, report)
    _check_dataset_files(raw, mode, report)
    return report


def _read_yaml(report: Report) -> dict[str, Any] | None:
    try:
        text = report.path.read_text(encoding="utf-8")
    except OSError as err:
        report.add("error", "", f"cannot read the file: {err.strerror or err}")
        return None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        report.add("error", "", f"YAML syntax error at {where}{err.problem}")
        return None
    if not isinstance(raw, dict):
        report.add("error", "", f"expected a mapping of axolotl keys, got {type(raw).__name__}")
        return None
    return raw


def _plugin_ready(raw: dict[str, Any], report: Report) -> bool:
    plugins = raw.get("plugins") or []
    if PLUGIN not in plugins:
        report.add(
            "error",
            "plugins",
            f"rl: {raw.get('rl')} needs the AOT plugin; add `plugins: [{PLUGIN}]` "
            "(without it axolotl ignores the aot_* keys and rejects the rl value)",
        )
        return False
    try:
        from axolotl.integrations.base import load_plugin

        load_plugin(PLUGIN)
    except Exception as err:  # an import error of any kind means axolotl would skip the plugin
        report.add("error", "plugins", f"{PLUGIN} cannot be imported ({err}); reinstall axolotl-aot")
        return False
    return True


def _axolotl_validate(raw: dict[str, Any], report: Report, *, as_gpu: bool, n_gpu: int) -> Any:
    from axolotl_aot.config import validate_raw

    try:
        return validate_raw(dict(raw), report.path, as_gpu=as_gpu, n_gpu=n_gpu)
    except ValidationError as err:
        for item in err.errors():
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
            report.add("error", key, item["msg"].removeprefix("Value error, "))
    except ValueError as err:
        report.add("error", "", str(err))
    return None


def _datasets(raw: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    return [
        (section, index, dataset)
        for section in ("datasets", "test_datasets")
        for index, dataset in enumerate(raw.get(section) or [])
        if isinstance(dataset, dict)
    ]


def _transform(family: str, raw: dict[str, Any], section: str, index: int) -> Any:
    """axolotl's own transform for the dataset's ``type:`` in a DPO or KTO family (None: unknown)."""
    import importlib

    dataset_type = raw[section][index].get("type")
    if dataset_type is None:
        return lambda row: row
    name = "user_defined.default" if isinstance(dataset_type, dict) else str(dataset_type)
    load = importlib.import_module(f"axolotl.prompt_strategies.{family}").load
    view = {**raw, "datasets": raw[section]}  # the strategies read cfg["datasets"][dataset_idx]
    return load(name, view, dataset_idx=index)


def _check_dataset_types(raw: dict[str, Any], mode: str, report: Report) -> None:
    own, other = FAMILY[mode], FAMILY["unpaired" if mode == "paired" else "paired"]
    for section, index, dataset in _datasets(raw):
        if dataset.get("type") is None or _transform(own, raw, section, index) is not None:
            continue
        key, name = f"{section}[{index}].type", dataset["type"]
        if _transform(other, raw, section, index) is not None:
            wrong = "a paired (DPO)" if other == "dpo" else "an unpaired (KTO)"
            rl = "aot" if other == "dpo" else "aot_unpaired"
            report.add(
                "error",
                key,
                f"{name!r} is {wrong} dataset type; rl: {AOT_RL_NAME[mode]} needs a {own.upper()} type "
                f"(or use rl: {rl}, or convert the data with aot-cli convert-dataset)",
            )
        else:
            report.add("error", key, f"{name!r} is not an axolotl {own.upper()} dataset type")


def _check_beta(cfg: Any, report: Report) -> None:
    beta = cfg.rl_beta
    if beta is not None and not BETA_RANGE[0] <= beta <= BETA_RANGE[1]:
        report.add(
            "warning",
            "rl_beta",
            f"rl_beta: {beta} is outside the usual range [{BETA_RANGE[0]}, {BETA_RANGE[1]}]; "
            "the paper uses 0.01",
        )


def _check_sort_size(cfg: Any, mode: str, n_gpu: int, report: Report) -> None:
    scope = cfg.aot_sort_scope
    per_device = cfg.micro_batch_size or 1
    ranks = 1 if scope == "local" else n_gpu
    accumulation = (cfg.gradient_accumulation_steps or 1) if scope == "step" else 1
    size = per_device * ranks * accumulation
    unit = "pairs" if mode == "paired" else "samples"
    if size >= MIN_SORT_SIZE:
        return
    fix = "raise micro_batch_size"
    if scope != "step":
        fix += (
            ", or set aot_sort_scope: step to sort the whole optimizer step at the memory of one micro-batch"
        )
    report.add(
        "warning",
        "micro_batch_size",
        f"each sort sees {size} {unit} (micro_batch_size {per_device} x {ranks} rank(s)"
        + (f" x {accumulation} accumulation steps" if scope == "step" else "")
        + f", aot_sort_scope: {scope}); the paper's Figure 2 shows quality rising steeply with the sort "
        f"size up to about 35 per GPU: {fix}",
    )


def _check_dataset_files(raw: dict[str, Any], mode: str, report: Report) -> None:
    base = report.path.parent
    for section, index, dataset in _datasets(raw):
        key, source = f"{section}[{index}]", str(dataset.get("path", ""))
        if not is_local(source):
            report.add("info", f"{key}.path", f"{source}: a hub dataset, not checked (offline)")
            continue
        path = Path(source) if Path(source).exists() else base / source
        if not path.exists():
            report.add("error", f"{key}.path", f"{source}: no such file or folder")
            continue
        transform = _transform(FAMILY[mode], raw, section, index)
        if transform is None:
            continue  # the type error is already reported
        try:
            head = list(itertools.islice(iter_records(path, dataset.get("split")), HEAD_ROWS))
        except (OSError, ValueError) as err:
            report.add("error", f"{key}.path", str(err))
            continue
        _check_rows(head, transform, mode, key, dataset, report)


def _check_rows(
    head: list, transform: Any, mode: str, key: str, dataset: dict[str, Any], report: Report
) -> None:
    if not head:
        report.add("error", f"{key}.path", f"{dataset['path']}: no rows")
    for record in head:
        where = f"{dataset['path']} row {record.index + 1}"
        if record.row is None:
            report.add("error", f"{key}.path", f"{where}: {record.error}")
            continue
        try:
            row = transform(dict(record.row))
        except KeyError as err:
            report.add(
                "error",
                f"{key}.type",
                f"{where} has no column {err} that type {dataset.get('type')!r} reads; "
                f"its columns are {', '.join(record.row)}",
            )
            return
        missing = [column for column in NEEDS[mode] if row.get(column) in (None, "")]
        if missing:
            report.add(
                "error",
                f"{key}.path",
                f"{where}: after type {dataset.get('type')!r} it has no {', '.join(missing)}; "
                f"rl: {AOT_RL_NAME[mode]} needs {', '.join(NEEDS[mode])}",
            )
            return


def check_evaluation(cfg: Any, report: Report) -> None:
    """Warn when training would never evaluate: no whole-set eval_aot/* metrics, no best checkpoint."""
    if not cfg.test_datasets and not cfg.val_set_size:
        key, why = "test_datasets", "it has neither test_datasets nor val_set_size"
    elif cfg.eval_strategy == "no" and not cfg.eval_steps:
        key, why = "eval_strategy", "eval_strategy is 'no'"
    else:
        return
    report.add(
        "warning",
        key,
        f"this config evaluates nothing ({why}): training will not log the held-out dominance "
        "(eval_aot/violation_fraction, eval_aot/win_rate) nor keep the best checkpoint; add test_datasets "
        "(or val_set_size) and eval_steps",
    )
