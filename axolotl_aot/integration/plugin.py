"""``AOTPlugin``: ``plugins: [axolotl_aot.AOTPlugin]`` with ``rl: aot`` or ``rl: aot_unpaired``.

Axolotl 0.19 validates ``rl`` against a closed enum, so ``register()`` (which runs on
the raw YAML before validation) rewrites the mode onto the trainer family whose data
pipeline it reuses: ``aot`` -> ``dpo`` (paired datasets), ``aot_unpaired`` -> ``kto``
(prompt/completion/label datasets), remembers the mode in ``aot_mode`` and selects the
AOT trainer through ``trainer_cls``. See ../README.md for the keys.
"""

from __future__ import annotations

from typing import Any

from axolotl.common.datasets import TrainDatasetMeta, load_preference_datasets
from axolotl.integrations.base import BasePlugin
from transformers import set_seed

from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.checkpoints import resume_checkpoint
from axolotl_aot.integration.data_checks import check_prepared_datasets
from axolotl_aot.integration.evaluation import greater_is_better
from axolotl_aot.integration.launch import (
    check_data_sharding,
    cpu_device_map,
    cpu_ranks_without_cuda_probe,
    cpu_training_args,
)

PAPER_BETA = 0.01  # the paper's recommendation (AOT-NOTES section 3), not TRL's generic 0.1

MODES: dict[str, tuple[str, str, str]] = {
    # rl value: (aot_mode, rl axolotl validates, trainer class)
    "aot": ("paired", "dpo", "axolotl_aot.integration.trainers.AOTPairedTrainer"),
    "aot_unpaired": ("unpaired", "kto", "axolotl_aot.integration.trainers.AOTUnpairedTrainer"),
}


class AOTPlugin(BasePlugin):
    """Adds ``rl: aot`` (paired) and ``rl: aot_unpaired`` (unpaired) to axolotl."""

    def get_input_args(self) -> str:
        return "axolotl_aot.integration.args.AOTArgs"

    def register(self, cfg: dict[str, Any]) -> None:
        """Rewrite ``rl: aot*`` before axolotl validates it; a no-op on a rewritten config."""
        rl = cfg.get("rl")
        if rl not in MODES:
            return
        cpu_ranks_without_cuda_probe()  # load_cfg runs the probe after this hook
        mode, base_rl, trainer_cls = MODES[rl]
        if cfg.get("trainer_cls") not in (None, trainer_cls):
            raise ValueError(
                f"trainer_cls: {cfg['trainer_cls']!r} conflicts with rl: {rl}, which uses {trainer_cls}; "
                "remove trainer_cls"
            )
        cfg["aot_mode"] = mode
        cfg["rl"] = base_rl
        cfg["trainer_cls"] = trainer_cls
        if cfg.get("rl_beta") is None and not (cfg.get("trl") or {}).get("beta"):
            cfg["rl_beta"] = PAPER_BETA

    def load_datasets(self, cfg: Any, preprocess: bool = False) -> TrainDatasetMeta | None:
        """Axolotl's own preference-data loading, checked before any trainer is built.

        The first hook after ``normalize_config`` and before the model loads, so also the place
        to put a CPU-only multi-process run's model on the CPU. A dataset the trainers cannot
        use ends the run with its message (``SystemExit``: no traceback) instead of TRL's crash.
        """
        if not cfg.aot_mode:
            return None
        cpu_device_map(cfg)
        if preprocess:  # `axolotl preprocess` only writes the prepared sets
            return None
        meta = load_preference_datasets(cfg=cfg)
        try:
            check_prepared_datasets(cfg, meta.train_dataset, meta.eval_dataset)
        except ValueError as error:
            raise SystemExit(f"axolotl-aot: {error}") from None
        return meta

    def get_training_args(self, cfg: Any) -> dict[str, Any] | None:
        if not cfg.aot_mode:
            return None
        args = {**cpu_training_args(), **best_checkpoint_args(cfg)}
        if cfg.aot_mode == "unpaired":
            # TRL's KTO trainer skips its KL forward pass for this loss type; AOT needs no KL term.
            args["loss_type"] = "apo_zero_unpaired"
        return args

    def pre_model_load(self, cfg: Any) -> None:
        """Hand the validated ``aot_*`` settings to the AOT trainers before one is built (TRL's
        constructor already computes log-probs for ``precompute_ref_log_probs``), choose the checkpoint
        to resume from (``checkpoints.resume_checkpoint``), and seed the
        random number generators with ``seed``: axolotl does not seed them before the model loads, so
        a LoRA adapter's random initialisation would differ between two runs of one config."""
        if cfg.aot_mode:
            from axolotl_aot.integration.trainers import AOTLossMixin

            AOTLossMixin.aot = AOTArgs.model_validate(
                {k: v for k, v in dict(cfg).items() if k.startswith("aot_")}
            )
            if cfg.seed is not None:
                set_seed(cfg.seed)
            try:  # before axolotl's auto-resume would take a half-written last checkpoint
                cfg.resume_from_checkpoint = resume_checkpoint(
                    cfg.output_dir, cfg.resume_from_checkpoint, bool(cfg.auto_resume_from_checkpoints)
                )
            except ValueError as error:
                raise SystemExit(f"axolotl-aot: {error}") from None

    def post_trainer_create(self, cfg: Any, trainer: Any) -> None:
        """Refuse a multi-process run whose ranks would not shard the data."""
        if cfg.aot_mode:
            check_data_sharding(trainer)


def best_checkpoint_args(cfg: Any) -> dict[str, Any]:
    """Training arguments for keeping the best checkpoint by an eval metric such as
    ``eval_aot/violation_fraction``.

    Axolotl's RL builder passes neither ``metric_for_best_model`` nor ``load_best_model_at_end``,
    and HF would take any metric not ending in "loss" as higher-is-better (wrong for the
    violation). The evaluation axolotl runs at step 0 is turned off: it scores the reference
    against itself (every reward 0, a violation of 0 that no checkpoint could beat) and
    there is no checkpoint of step 0 to load.
    """
    args: dict[str, Any] = {}
    if cfg.metric_for_best_model:
        args["metric_for_best_model"] = cfg.metric_for_best_model
        args["greater_is_better"] = (
            cfg.greater_is_better
            if cfg.greater_is_better is not None
            else greater_is_better(cfg.metric_for_best_model)
        )
    if cfg.load_best_model_at_end:
        args["load_best_model_at_end"] = True
        args["eval_on_start"] = False
    return args
