"""``AOTPlugin``: ``plugins: [axolotl_aot.AOTPlugin]`` with ``rl: aot`` or ``rl: aot_unpaired``.

Axolotl 0.19 validates ``rl`` against a closed enum, so ``register()`` (which runs on
the raw YAML before validation) rewrites the mode onto the trainer family whose data
pipeline it reuses: ``aot`` -> ``dpo`` (paired datasets), ``aot_unpaired`` -> ``kto``
(prompt/completion/label datasets), remembers the mode in ``aot_mode`` and selects the
AOT trainer through ``trainer_cls``. See ../README.md for the keys.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from axolotl.integrations.base import BasePlugin
from transformers import EarlyStoppingCallback, set_seed

from axolotl_aot.integration import compat
from axolotl_aot.integration.beta import PAPER_BETA, betas_set
from axolotl_aot.integration.checkpoints import resume_checkpoint
from axolotl_aot.integration.data_checks import check_prepared_datasets, check_source_datasets
from axolotl_aot.integration.evaluation import greater_is_better
from axolotl_aot.integration.launch import (
    check_data_sharding,
    cpu_device_map,
    cpu_ranks_without_cuda_probe,
    cpu_training_args,
)
from axolotl_aot.integration.modes import BY_NAME, BY_RL
from axolotl_aot.integration.settings import setting_problems
from axolotl_aot.integration.training_args import config_settings, settings_merged

LOG = logging.getLogger(__name__)


class AOTPlugin(BasePlugin):
    """Adds ``rl: aot`` (paired) and ``rl: aot_unpaired`` (unpaired) to axolotl."""

    def __init__(self) -> None:
        super().__init__()
        # What a hook changed in axolotl and a later hook undoes: pre_lora_load's loader switch,
        # register's answer to the CUDA peer probe.
        self._restore_loader: Callable[[], None] | None = None
        self._restore_probe: Callable[[], None] | None = None

    def get_input_args(self) -> str:
        return "axolotl_aot.integration.args.AOTArgs"

    def get_training_args_mixin(self) -> str:
        """The AOT settings as fields of axolotl's DPO/KTO training arguments: each trainer reads its own."""
        return "axolotl_aot.integration.training_args.AOTTrainingArguments"

    def register(self, cfg: dict[str, Any]) -> None:
        """Rewrite ``rl: aot*`` before axolotl validates it; a no-op on a rewritten config.

        Also where the keys that have no effect under AOT (``settings``) are logged: axolotl calls
        this once per config load, on the raw YAML, and the schema then refuses any refused key.
        """
        rl = cfg.get("rl")
        mode = BY_RL.get(rl) if isinstance(rl, str) else None
        if mode is None:
            return
        if _rank_zero():
            for problem in setting_problems(cfg):
                if problem.kind == "warned":
                    LOG.warning("axolotl-aot: %s", problem.message)
        self._restore_probe = cpu_ranks_without_cuda_probe()  # load_cfg runs the probe after this hook
        if cfg.get("trainer_cls") not in (None, mode.trainer):
            raise ValueError(
                f"trainer_cls: {cfg['trainer_cls']!r} conflicts with rl: {rl}, which uses {mode.trainer}; "
                "remove trainer_cls"
            )
        cfg["aot_mode"] = mode.name
        cfg["rl"] = mode.axolotl_rl
        cfg["trainer_cls"] = mode.trainer
        if not betas_set(cfg):
            cfg["rl_beta"] = PAPER_BETA  # a beta the YAML sets (even 0, which AOTArgs refuses) is kept

    def load_datasets(self, cfg: Any, preprocess: bool = False) -> Any:
        """Axolotl's own preference-data loading, checked before any trainer is built.

        The first hook after ``normalize_config`` and before the model loads, so also the place
        to put a CPU-only multi-process run's model on the CPU. A dataset the trainers cannot
        use ends the run with its message (``SystemExit``: no traceback) instead of TRL's crash.
        """
        if not cfg.aot_mode:
            return None
        if self._restore_probe is not None:  # load_cfg is done with axolotl's CUDA peer probe
            self._restore_probe()
            self._restore_probe = None
        cpu_device_map(cfg)
        check_source_files(cfg)
        if preprocess:  # `axolotl preprocess` only writes the prepared sets
            return None
        meta = compat.load_preference_datasets(cfg)  # axolotl's TrainDatasetMeta
        try:
            check_prepared_datasets(cfg, meta.train_dataset, meta.eval_dataset)
        except ValueError as error:
            raise SystemExit(f"axolotl-aot: {error}") from None
        return meta

    def get_training_args(self, cfg: Any) -> dict[str, Any] | None:
        if not cfg.aot_mode:
            return None
        mode = BY_NAME[cfg.aot_mode]
        args = {**cpu_training_args(), **best_checkpoint_args(cfg), **start_eval_args(cfg)}
        if settings_merged():  # else a trainer built from these args says why it has no settings
            args.update(config_settings(cfg))  # each trainer carries its own
        if mode.loss_type:  # unpaired: TRL's KTO trainer skips its KL forward pass for it; AOT needs none
            args["loss_type"] = mode.loss_type
        if not mode.paired and cfg.precompute_ref_log_probs is not None:  # axolotl maps it for dpo only
            args["precompute_ref_log_probs"] = bool(cfg.precompute_ref_log_probs)
        if cfg.router_aux_loss_coef is not None:  # axolotl passes no such key to TRL's configs
            args["router_aux_loss_coef"] = cfg.router_aux_loss_coef
        return args

    def pre_model_load(self, cfg: Any) -> None:
        """Choose the checkpoint to resume from (``checkpoints.resume_checkpoint``), and seed the
        random number generators with ``seed``: axolotl does not seed them before the model loads, so
        a LoRA adapter's random initialisation would differ between two runs of one config."""
        if cfg.aot_mode:
            if cfg.seed is not None:
                set_seed(cfg.seed)
            try:  # before axolotl's auto-resume would take a half-written last checkpoint
                cfg.resume_from_checkpoint = resume_checkpoint(
                    cfg.output_dir, cfg.resume_from_checkpoint, bool(cfg.auto_resume_from_checkpoints)
                )
            except ValueError as error:
                raise SystemExit(f"axolotl-aot: {error}") from None

    def post_train(self, cfg: Any, model: Any) -> None:
        """After axolotl's final save: its FSDP2 LoRA adapter gets PEFT's keys back (``adapter_keys``)."""
        if cfg.aot_mode and cfg.adapter and str(cfg.fsdp_version) == "2" and _rank_zero():
            from axolotl_aot.integration.adapter_keys import repair_fsdp2_adapter

            repair_fsdp2_adapter(Path(cfg.output_dir), model)

    def pre_lora_load(self, cfg: Any, model: Any) -> None:
        """Under ``axolotl evaluate``, load the trained adapter of ``lora_model_dir``.

        axolotl's RL loading builds only the LoRA config (``compat.load_saved_adapter``), which
        ``axolotl evaluate`` does not even hand to TRL: it would score the base model against
        itself (every reward 0, a loss of log 2). Training keeps axolotl's loading.
        """
        if cfg.aot_mode and cfg.lora_model_dir and compat.axolotl_evaluating():
            self._restore_loader = compat.load_saved_adapter(cfg)

    def post_lora_load(self, cfg: Any, model: Any) -> None:
        """Undo ``pre_lora_load``'s switch: later code reads ``merge_lora`` as the user set it."""
        if self._restore_loader is not None:
            self._restore_loader()
            self._restore_loader = None

    def add_callbacks_pre_trainer(self, cfg: Any, model: Any) -> list[Any]:
        """``early_stopping_patience``, as axolotl's supervised builder adds it (its RL builder does not):
        training stops after that many evaluations without improving ``metric_for_best_model``."""
        if cfg.aot_mode and cfg.early_stopping_patience and not compat.axolotl_evaluating():
            return [EarlyStoppingCallback(cfg.early_stopping_patience)]
        return []

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[Any]:
        """Under ``axolotl evaluate``, score the loaded adapter against its base model, as training
        did and as ``aot-cli report`` does.

        Given a trained adapter and no reference model, TRL copies it into a "ref" adapter for
        the reference, which would score the adapter against itself. The first hook with the
        trainer on evaluate's path, which calls no ``post_trainer_create``.
        """
        if cfg.aot_mode and compat.axolotl_evaluating():
            compat.drop_trl_ref_adapter(trainer.model)
        return []

    def post_trainer_create(self, cfg: Any, trainer: Any) -> None:
        """Refuse a multi-process run whose ranks would not shard the data, and a training run from
        ``lora_model_dir``: axolotl's RL loader never loads that adapter (``compat.load_saved_adapter``),
        so it would silently train a fresh one. Only training calls this hook (not ``axolotl evaluate``,
        which loads the adapter through ``pre_lora_load``)."""
        if cfg.aot_mode:
            if cfg.lora_model_dir and cfg.adapter:
                raise SystemExit(
                    f"axolotl-aot: lora_model_dir: {cfg.lora_model_dir} is not loaded for training by "
                    "axolotl's preference-training path (rl: dpo/kto, which rl: aot/aot_unpaired use): the "
                    "run would train a fresh adapter. Remove lora_model_dir to train a new adapter, or use "
                    "resume_from_checkpoint to continue a run; `axolotl evaluate` scores its adapter."
                )
            check_data_sharding(trainer)


def _rank_zero() -> bool:
    """Whether this process is the launch's rank 0 (or no launch's), which logs and writes once."""
    return int(os.environ.get("RANK", "0")) == 0


def check_source_files(cfg: Any) -> None:
    """``aot-cli validate``'s row checks of the local dataset files, before axolotl reads them (it would
    die on a non-UTF-8 line with a bare ``UnicodeDecodeError``, and train rows that render wrongly):
    the errors end the run with their messages, the warnings are logged."""

    @functools.cache  # loaded once, on the first file whose type needs it
    def tokenizer() -> Any:
        try:
            return compat.load_tokenizer(cfg)
        except (OSError, ValueError) as error:
            return f"the tokenizer does not load ({error})"

    findings = check_source_datasets(cfg, BY_NAME[cfg.aot_mode], tokenizer)
    for finding in findings:
        if finding.severity == "warning" and _rank_zero():
            LOG.warning("axolotl-aot: %s: %s", finding.key, finding.message)
    errors = [f"{finding.key}: {finding.message}" for finding in findings if finding.severity == "error"]
    if errors:
        raise SystemExit("axolotl-aot: " + "\n".join(errors))


def best_checkpoint_args(cfg: Any) -> dict[str, Any]:
    """Training arguments for keeping the best checkpoint, and stopping early, by an eval metric such
    as ``eval_aot/violation_fraction``.

    Axolotl's RL builder passes neither ``metric_for_best_model`` nor ``load_best_model_at_end``,
    and HF would take any metric not ending in "loss" as higher-is-better (wrong for the
    violation). ``early_stopping_patience`` keeps the best checkpoint as axolotl's supervised
    builder does, by ``eval_loss`` unless another metric is named (HF's default).
    """
    args: dict[str, Any] = {}
    metric = cfg.metric_for_best_model or ("eval_loss" if cfg.early_stopping_patience else None)
    if metric:
        args["metric_for_best_model"] = metric
        args["greater_is_better"] = (
            cfg.greater_is_better if cfg.greater_is_better is not None else greater_is_better(metric)
        )
    if cfg.load_best_model_at_end or cfg.early_stopping_patience:
        args["load_best_model_at_end"] = True
    return args


def start_eval_args(cfg: Any) -> dict[str, Any]:
    """``eval_on_start: False`` for every AOT run, said once when axolotl would have evaluated.

    axolotl's builder (``_configure_save_and_eval_strategy``) evaluates before the first step
    whenever ``eval_steps`` or ``eval_strategy`` is set (0.21: unless ``eval_on_start: false``).
    Before any step the policy is its reference, so that evaluation scores the reference against
    itself: every reward 0, a loss of log 2 and an ``eval_aot/violation_fraction`` of 0 that reads
    as perfect dominance (and that no checkpoint could beat for ``load_best_model_at_end``). It
    carries no information, so it is skipped even when ``eval_on_start: true`` asks for it.
    """
    if _evaluates_at_start(cfg) and _rank_zero() and not compat.axolotl_evaluating():
        skipped = "eval_on_start: true is ignored" if cfg.eval_on_start else "no evaluation at step 0"
        LOG.warning(
            "axolotl-aot: %s: before the first step the policy equals its reference, so it would score "
            "the reference against itself (every reward 0, eval_aot/violation_fraction 0: no information)",
            skipped,
        )
    return {"eval_on_start": False}


def _evaluates_at_start(cfg: Any) -> bool:
    """Whether axolotl (0.19 or 0.21) would evaluate ``cfg`` before the first step."""
    if not (cfg.test_datasets or cfg.val_set_size) or cfg.eval_on_start is False:
        return False
    return cfg.eval_strategy != "no" and bool(cfg.eval_steps or cfg.eval_strategy)
