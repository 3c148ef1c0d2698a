"""The checks of a config file and its own keys: YAML syntax, the mode, the plugin, axolotl's schema,
the AOT settings audit, unknown keys, a local base model, the beta, the sort size, evaluation and
whether the micro-batches will be packed.

Each check adds ``Problem``s to the ``Report``; the dataset checks are in ``data_checks``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from axolotl_aot import PLUGIN
from axolotl_aot.integration import compat, packing
from axolotl_aot.integration.beta import PAPER_BETA, beta
from axolotl_aot.integration.modes import Mode, of_config
from axolotl_aot.integration.settings import SETTINGS, setting_problems
from axolotl_aot.tools.config import known_keys, requested_attention, validate_raw
from axolotl_aot.tools.validate.report import Report

MIN_SORT_SIZE = 16  # paper, Figure 2 (right): quality keeps rising up to per-GPU batches of about 35
BETA_RANGE = (1e-3, 1.0)
CLOSE_KEY = 0.8  # difflib ratio above which an unknown key is taken for a misspelling


def read_yaml(report: Report) -> dict[str, Any] | None:
    """The mapping of ``report.path``'s YAML, or None with why it cannot be read."""
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


def check_mode(raw: dict[str, Any], report: Report) -> Mode | None:
    """The config's AOT mode (``modes.of_config``), else an error: every other check depends on it."""
    mode = of_config(raw)
    if mode is None:
        rl = raw.get("rl")
        what = f"a {type(rl).__name__} ({rl!r})" if rl is not None and not isinstance(rl, str) else repr(rl)
        report.add("error", "rl", f"rl is {what}, not aot or aot_unpaired: this is not an AOT config")
    return mode


def check_plugin(raw: dict[str, Any], report: Report) -> bool:
    """Whether axolotl will run the plugin: it imports, and the config lists it (or axolotl loads it)."""
    try:
        compat.load_plugin(PLUGIN)
    except Exception as err:  # an import error of any kind means axolotl would skip the plugin
        report.add("error", "plugins", f"{PLUGIN} cannot be imported ({err}); reinstall axolotl-aot")
        return False
    if PLUGIN not in (raw.get("plugins") or []) and not compat.plugin_autoloaded():
        report.add(
            "error",
            "plugins",
            f"rl: {raw.get('rl')} needs the AOT plugin; add `plugins: [{PLUGIN}]` "
            "(this axolotl loads only the plugins a config lists, so without it axolotl ignores the "
            "aot_* keys and rejects the rl value; axolotl >= 0.21 loads the installed plugin by itself)",
        )
        return False
    return True


def axolotl_validate(raw: dict[str, Any], report: Report, *, as_gpu: bool, n_gpu: int) -> Any:
    """The config as axolotl validates it, or None with each schema error reported at its key."""
    try:
        return validate_raw(dict(raw), report.path, as_gpu=as_gpu, n_gpu=n_gpu)
    except ValidationError as err:
        for item in err.errors():
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
            report.add("error", key, item["msg"].removeprefix("Value error, "))
    except ValueError as err:
        report.add("error", "", str(err))
    return None


def check_settings(raw: dict[str, Any], mode: Mode, report: Report) -> None:
    """Every refused key as an error and every ignored one as a warning (``settings.setting_problems``).

    Axolotl's validation stops at the first refused key; its error (already in the report) is not
    repeated.
    """
    reported = {p.message for p in report.problems}
    for problem in setting_problems(raw, mode):
        if problem.message not in reported:
            report.add("error" if problem.kind == "refused" else "warning", problem.key, problem.message)


def check_unknown_keys(raw: dict[str, Any], report: Report) -> None:
    """Keys axolotl would drop silently: an error when close to a known key (a misspelling)."""
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


def check_base_model(raw: dict[str, Any], report: Report) -> None:
    for key in ("base_model", "tokenizer_config"):
        value = raw.get(key)
        if isinstance(value, str) and _path_like(value) and not Path(value).expanduser().exists():
            report.add(
                "error", key, report.missing(value, "build or download the model there, or use a hub name")
            )


def _path_like(value: str) -> bool:
    """Whether a model name is a local path (a hub name is ``org/name``, never starting with these)."""
    return value.startswith(("/", ".", "~")) or value.count("/") > 1


def check_beta(cfg: Any, report: Report) -> None:
    """Warn about an unusual value of the beta the run trains with (``beta.beta``: axolotl's choice)."""
    key, value = beta(cfg)
    if key is None or BETA_RANGE[0] <= value <= BETA_RANGE[1]:
        return
    report.add(
        "warning",
        key,
        f"{key}: {value} is outside the usual range [{BETA_RANGE[0]}, {BETA_RANGE[1]}]; "
        f"the paper uses {PAPER_BETA}",
    )


def check_sort_size(cfg: Any, mode: Mode, n_gpu: int, report: Report) -> None:
    """Warn when one sort couples fewer rows than the paper found to matter (``MIN_SORT_SIZE``)."""
    scope = cfg.aot_sort_scope
    per_device = cfg.micro_batch_size or 1
    ranks = 1 if scope == "local" else n_gpu
    accumulation = (cfg.gradient_accumulation_steps or 1) if scope == "step" else 1
    size = per_device * ranks * accumulation
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
        f"each sort sees {size} {mode.unit} (micro_batch_size {per_device} x {ranks} rank(s)"
        + (f" x {accumulation} accumulation steps" if scope == "step" else "")
        + f", aot_sort_scope: {scope}); the paper's Figure 2 shows quality rising steeply with the sort "
        f"size up to about 35 per GPU: {fix}",
    )


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


def check_padding_free(cfg: Any, report: Report) -> None:
    """Say when training will pad the micro-batches although ``aot_padding_free`` asks to pack them, and
    why (silence: packed, or padding asked for)."""
    if not cfg.aot_padding_free:
        return
    model_class = causal_lm_class(cfg.base_model)
    if isinstance(model_class, str):
        detail = f"packed unless the model cannot take packed rows (decided when it loads: {model_class})"
    else:
        problem = packing.class_problem(model_class, requested_attention(cfg))
        if problem is None:
            return
        detail = f"padded: {problem}"
    report.add("info", "aot_padding_free", f"micro-batches {detail}")


def causal_lm_class(base_model: str | None) -> type | str:
    """The ``*ForCausalLM`` class transformers builds for ``base_model`` (its config read locally or from
    the cache), or why it is not known here."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        config = AutoConfig.from_pretrained(base_model)
        return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except (OSError, ValueError, KeyError) as error:
        return f"the model's config is not readable here ({type(error).__name__})"
