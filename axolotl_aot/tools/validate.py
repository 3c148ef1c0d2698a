"""Everything wrong with an AOT config, found before a GPU is rented: ``aot-cli validate``.

The YAML goes through axolotl's own pipeline with the plugin registered (``config``), so
schema errors are axolotl's. On top come what axolotl lets through silently and what only
AOT knows about: every axolotl key that rl: aot/aot_unpaired refuses or ignores (all of them,
where training stops at the first: ``args.setting_problems``, docs/settings.md), unknown
(misspelt) keys, a local ``base_model`` that does not exist, the plugin missing or not
importable, a dataset type of the wrong family for the mode, an unusual beta, a sort too
small for the paper's batch-size finding, and local dataset files that are missing (looked
up as ``axolotl.cli.train`` does, from the current directory) or that the configured type
does not render into what the mode trains: the first rows go through the type, with the
model's tokenizer when the type needs one, and the rendered prompt must be text holding the
row's user text, each answer non-empty text.

Each check is one ``_check_*`` function adding ``Problem``s to the ``Report``.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from axolotl_aot import PLUGIN
from axolotl_aot.integration.modes import BY_NAME, MODES
from axolotl_aot.tools.records import is_local, iter_records

# Views of the one mode map (integration/modes.py), keyed as this module reads them.
AOT_RL = {mode.rl: mode.name for mode in MODES}
AOT_RL_NAME = {mode.name: mode.rl for mode in MODES}
FAMILY = {mode.name: mode.axolotl_rl for mode in MODES}
NEEDS = {mode.name: mode.columns for mode in MODES}
MIN_SORT_SIZE = 16  # paper, Figure 2 (right): quality keeps rising up to per-GPU batches of about 35
BETA_RANGE = (1e-3, 1.0)
HEAD_ROWS = 5
CLOSE_KEY = 0.8  # difflib ratio above which an unknown key is taken for a misspelling
# The Python text of a message list, as str() of a list renders it: a type read messages as a string.
MESSAGE_REPR = re.compile(r"""\{\s*['"](role|content)['"]\s*:""")
CHAT_TYPES = {mode.name: mode.chat_type for mode in MODES}

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
    mode = _mode(raw, report)
    if mode is None or not _plugin_ready(raw, report):
        return report
    cfg = _axolotl_validate(raw, report, as_gpu=as_gpu, n_gpu=n_gpu)
    _check_settings(raw, mode, report)
    _check_unknown_keys(raw, report)
    _check_base_model(raw, report)
    _check_dataset_types(raw, mode, report)
    if cfg is not None:
        _check_beta(cfg, report)
        _check_sort_size(cfg, mode, n_gpu, report)
        check_evaluation(cfg, report)
    _check_dataset_files(raw, mode, report)
    return report


def _mode(raw: dict[str, Any], report: Report) -> str | None:
    """``paired``/``unpaired`` from ``rl:`` (or an already rewritten ``aot_mode``), else an error."""
    rl, mode = raw.get("rl"), raw.get("aot_mode")
    if isinstance(rl, str) and rl in AOT_RL:
        return AOT_RL[rl]
    if isinstance(mode, str) and mode in FAMILY:
        return mode
    what = f"a {type(rl).__name__} ({rl!r})" if rl is not None and not isinstance(rl, str) else repr(rl)
    report.add("error", "rl", f"rl is {what}, not aot or aot_unpaired: this is not an AOT config")
    return None


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
    try:
        from axolotl.integrations.base import load_plugin

        load_plugin(PLUGIN)
        from axolotl_aot.integration.compat import plugin_autoloaded
    except Exception as err:  # an import error of any kind means axolotl would skip the plugin
        report.add("error", "plugins", f"{PLUGIN} cannot be imported ({err}); reinstall axolotl-aot")
        return False
    if PLUGIN not in (raw.get("plugins") or []) and not plugin_autoloaded():
        report.add(
            "error",
            "plugins",
            f"rl: {raw.get('rl')} needs the AOT plugin; add `plugins: [{PLUGIN}]` "
            "(this axolotl loads only the plugins a config lists, so without it axolotl ignores the "
            "aot_* keys and rejects the rl value; axolotl >= 0.21 loads the installed plugin by itself)",
        )
        return False
    return True


def _axolotl_validate(raw: dict[str, Any], report: Report, *, as_gpu: bool, n_gpu: int) -> Any:
    from axolotl_aot.tools.config import validate_raw

    try:
        return validate_raw(dict(raw), report.path, as_gpu=as_gpu, n_gpu=n_gpu)
    except ValidationError as err:
        for item in err.errors():
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
            report.add("error", key, item["msg"].removeprefix("Value error, "))
    except ValueError as err:
        report.add("error", "", str(err))
    return None


def _check_settings(raw: dict[str, Any], mode: str, report: Report) -> None:
    """Every refused key as an error and every ignored one as a warning (``args.setting_problems``).

    Axolotl's validation stops at the first refused key; its error (already in the report) is not
    repeated.
    """
    from axolotl_aot.integration.args import setting_problems

    reported = {p.message for p in report.problems}
    for problem in setting_problems(raw, mode):
        if problem.message not in reported:
            report.add("error" if problem.kind == "refused" else "warning", problem.key, problem.message)


def _check_unknown_keys(raw: dict[str, Any], report: Report) -> None:
    from axolotl_aot.integration.args import SETTINGS
    from axolotl_aot.tools.config import known_keys

    known = known_keys() | set(SETTINGS)  # the keys of SETTINGS have their own message
    for key in raw:
        if not isinstance(key, str) or key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=CLOSE_KEY)
        if close:
            report.add(
                "error",
                key,
                f"unknown key {key!r}; did you mean {close[0]!r}? (axolotl ignores unknown keys, so the run "
                f"would use the default {close[0]})",
            )
        else:
            report.add("warning", key, f"unknown key {key!r}: axolotl ignores it")


def _check_base_model(raw: dict[str, Any], report: Report) -> None:
    for key in ("base_model", "tokenizer_config"):
        value = raw.get(key)
        if isinstance(value, str) and _path_like(value) and not Path(value).expanduser().exists():
            report.add(
                "error", key, _missing(value, report, "build or download the model there, or use a hub name")
            )


def _missing(value: str, report: Report, fix: str = "") -> str:
    """A missing local path, and where it is if it exists relative to the config instead."""
    beside = report.path.parent / value
    if beside.exists() and not Path(value).is_absolute():
        fix = (
            f"it exists beside the config ({beside}), but axolotl.cli.train reads relative paths from the "
            f"current directory ({Path.cwd()}): run from {report.path.parent} or give an absolute path"
        )
    return f"{value}: no such file or folder" + (f"; {fix}" if fix else "")


def _path_like(value: str) -> bool:
    """Whether a model name is a local path (a hub name is ``org/name``, never starting with these)."""
    return value.startswith(("/", ".", "~")) or value.count("/") > 1


def _datasets(raw: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    return [
        (section, index, dataset)
        for section in ("datasets", "test_datasets")
        for index, dataset in enumerate(raw.get(section) or [])
        if isinstance(dataset, dict)
    ]


def _transform(family: str, raw: dict[str, Any], section: str, index: int) -> Any:
    """axolotl's own transform for the dataset's ``type:`` in a DPO or KTO family (None: unknown)."""
    dataset_type = raw[section][index].get("type")
    if dataset_type is None:
        return lambda row: row
    name = "user_defined.default" if isinstance(dataset_type, dict) else str(dataset_type)
    load = importlib.import_module(f"axolotl.prompt_strategies.{family}").load
    view = {**raw, "datasets": raw[section]}  # the strategies read cfg["datasets"][dataset_idx]
    return load(name, view, dataset_idx=index)


def _check_dataset_types(raw: dict[str, Any], mode: str, report: Report) -> None:
    this = BY_NAME[mode]
    that = next(m for m in MODES if m is not this)
    own, other = this.axolotl_rl, that.axolotl_rl
    for section, index, dataset in _datasets(raw):
        if dataset.get("type") is None or _transform(own, raw, section, index) is not None:
            continue
        key, name = f"{section}[{index}].type", dataset["type"]
        if _transform(other, raw, section, index) is not None:
            wrong = "a paired (DPO)" if that.paired else "an unpaired (KTO)"
            rl = that.rl
            report.add(
                "error",
                key,
                f"{name!r} is {wrong} dataset type; rl: {AOT_RL_NAME[mode]} needs a {own.upper()} type "
                f"(or use rl: {rl}, or convert the data with aot-cli convert-dataset)",
            )
        else:
            report.add("error", key, f"{name!r} is not an axolotl {own.upper()} dataset type")


def _check_beta(cfg: Any, report: Report) -> None:
    """The beta the run trains with: ``trl.beta`` when set (axolotl passes it first), else ``rl_beta``."""
    trl_beta = (cfg.trl or {}).get("beta")
    key, beta = ("trl.beta", trl_beta) if trl_beta is not None else ("rl_beta", cfg.rl_beta)
    if beta is not None and not BETA_RANGE[0] <= beta <= BETA_RANGE[1]:
        report.add(
            "warning",
            key,
            f"{key}: {beta} is outside the usual range [{BETA_RANGE[0]}, {BETA_RANGE[1]}]; "
            "the paper uses 0.01",
        )


def _check_sort_size(cfg: Any, mode: str, n_gpu: int, report: Report) -> None:
    scope = cfg.aot_sort_scope
    per_device = cfg.micro_batch_size or 1
    ranks = 1 if scope == "local" else n_gpu
    accumulation = (cfg.gradient_accumulation_steps or 1) if scope == "step" else 1
    size = per_device * ranks * accumulation
    unit = BY_NAME[mode].unit
    if scope == "step":
        report.add(
            "info",
            "aot_sort_scope",
            "step: each micro-batch's gradient pass replays the random state (torch's CPU and CUDA "
            "generators) "
            "of its scoring pass, so dropout and router jitter give the rewards that were coupled; other "
            "randomness (Python, NumPy) and nondeterministic GPU kernels are not replayed: the training log "
            "warns if the two passes' log-probs differ by more than a relative 1e-4",
        )
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
    tokenizer: list[Any] = []  # loaded once, on first need
    for section, index, dataset in _datasets(raw):
        key, source = f"{section}[{index}]", str(dataset.get("path", ""))
        if not is_local(source):
            report.add("info", f"{key}.path", f"{source}: a hub dataset, not checked (offline)")
            continue
        path = Path(source).expanduser()  # axolotl.cli.train: relative to the current directory
        if not path.exists():
            report.add("error", f"{key}.path", _missing(source, report))
            continue
        transform = _transform(FAMILY[mode], raw, section, index)
        if transform is None:
            continue  # the type error is already reported
        if isinstance(transform, tuple):
            transform = transform[0]  # (transform, map kwargs)
        try:
            head = list(itertools.islice(iter_records(path, dataset.get("split")), HEAD_ROWS))
        except (OSError, ValueError) as err:
            report.add("error", f"{key}.path", str(err))
            continue
        if "tokenizer" in inspect.signature(transform).parameters:
            if not tokenizer:
                tokenizer.append(_tokenizer(raw))
            if isinstance(tokenizer[0], str):
                report.add("info", f"{key}.type", f"rows not rendered: {tokenizer[0]}")
                continue
            transform = functools.partial(transform, tokenizer=tokenizer[0])
        _check_rows(head, transform, mode, key, dataset, report)


def _tokenizer(raw: dict[str, Any]) -> Any:
    """The model's tokenizer from a local folder, or why it is not available (a string)."""
    name = raw.get("tokenizer_config") or raw.get("base_model_config") or raw.get("base_model")
    if not isinstance(name, str) or not Path(name).expanduser().exists():
        return (
            f"the type needs the tokenizer of {name!r}, which is not a local folder (not downloaded offline)"
        )
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(Path(name).expanduser()), local_files_only=True)
    except (OSError, ValueError) as err:
        return f"the tokenizer of {name!r} does not load ({err})"


def _check_rows(
    head: list, transform: Any, mode: str, key: str, dataset: dict[str, Any], report: Report
) -> None:
    """Render the first rows with the type; report the first row that would not train as intended."""
    if not head:
        report.add("error", f"{key}.path", f"{dataset['path']}: no rows")
    name = dataset.get("type")
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
                f"{where} has no column {err} that type {name!r} reads; "
                f"its columns are {', '.join(record.row)}",
            )
            return
        except Exception as err:  # whatever the type raises, training would raise it too
            report.add("error", f"{key}.type", f"{where}: type {name!r} fails on it: {err}")
            return
        problem = _rendering_problem(record.row, row, mode)
        if problem:
            chat = "" if name == CHAT_TYPES[mode] else f"; for message lists use type: {CHAT_TYPES[mode]}"
            report.add("error", f"{key}.type", f"{where}, rendered with type {name!r}: {problem}{chat}")
            return


def _rendering_problem(source: dict[str, Any], row: dict[str, Any], mode: str) -> str | None:
    """What is wrong with one row as the type renders it for training, or None."""
    missing = [column for column in NEEDS[mode] if row.get(column) in (None, "")]
    if missing:
        return f"it has no {', '.join(missing)}; rl: {AOT_RL_NAME[mode]} needs {', '.join(NEEDS[mode])}"
    for column in NEEDS[mode]:
        value = row[column]
        if column == "label":
            continue
        if not isinstance(value, str):
            return (
                f"{column} is a {type(value).__name__}, not text (training fails: text input must be a str)"
            )
        if MESSAGE_REPR.search(value):
            return f"{column} holds the Python text of a message list: {value[:60]!r}..."
        if not value.strip():
            return f"{column} is empty"
    user = _user_text(source)
    if user and user.strip() not in row["prompt"]:
        return f"the prompt {row['prompt'][:60]!r} does not contain the row's user text {user[:40]!r}"
    chosen = source.get("chosen")
    answer = _user_text({"chosen": chosen}, ("chosen",), "assistant") if isinstance(chosen, list) else None
    if mode == "paired" and answer and answer.strip() in row["prompt"]:
        return (
            f"the prompt contains the chosen answer {answer[:40]!r}: the type reads the prompt from a column "
            "holding the whole conversation (UltraFeedback's messages)"
        )
    return None


def _user_text(
    row: dict[str, Any], columns: tuple[str, ...] = ("prompt", "question", "instruction"), role: str = "user"
) -> str | None:
    """The last ``role`` turn of a source row: the first of ``columns`` that is text or a message list."""
    for column in columns:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list):
            turns = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == role]
            if turns and isinstance(turns[-1], str):
                return turns[-1]
    return None


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
