"""The one door to TRL and axolotl: every name of theirs that axolotl-aot uses, behind a function.

No other module of the package imports ``trl`` or ``axolotl`` (``tests/test_compat.py`` checks
it), except the ``BasePlugin`` base of the two plugin classes and the dataset-type module
``axolotl_aot_chat``. Each function below says what it reaches and on which releases it was
checked: axolotl 0.19 + TRL 1.9 (Python 3.11) and axolotl 0.21 + TRL 1.14 (Python 3.12), the
two stacks of README "Install". Imports happen inside the functions, so importing this module
costs nothing and never imports ``axolotl.core.training_args`` before the plugin registers
its training-arguments mixin.

The trainer classes are checked when they are handed out (``dpo_trainer``/``kto_trainer``, which
``trainers`` subclasses at import): a release without a method the AOT trainers override or call
raises ``IncompatibleRelease`` naming it and the installed version, so training never falls
back to TRL's own loss silently. The instance attributes TRL's constructor sets are checked
once per trainer (``check_trainer_state``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import version
from typing import Any

from axolotl_aot import PLUGIN

CHECKED = "axolotl 0.19 + TRL 1.9 and axolotl 0.21 + TRL 1.14"
# The trainer methods the AOT trainers override (o) or call (c), on TRL's DPO and KTO trainers.
TRAINER_METHODS = (
    "_compute_loss",  # o: the loss, called by TRL's compute_loss
    "compute_ref_log_probs",  # o: the reference pass, also precompute_ref_log_probs'
    "get_batch_samples",  # o: the step scope weighs a whole optimizer step here (transformers' Trainer)
    "evaluation_loop",  # o: whole-set evaluation metrics
    "_prepare_inputs",  # c: a collated batch on the device, as training_step prepares it
    "compute_loss_context_manager",  # c: the same autocast as the gradient pass
    "prediction_step",  # o: an evaluation batch's rows kept for the whole-set metrics
    "log",  # o: the loss inputs' finiteness checked once per log (TRL's log averages its metrics)
)
KTO_METHODS = ("_get_train_sampler",)  # o: rl: aot_unpaired's label-mixing sampler
# What TRL's DPO/KTO constructors set and the AOT trainers read or write.
TRAINER_STATE = ("_metrics", "_total_train_tokens", "aux_loss_enabled", "router_aux_loss_coef", "beta")


class IncompatibleRelease(ImportError):
    """An installed TRL, transformers or axolotl lacks a name axolotl-aot relies on."""


def _installed(package: str) -> str:
    return f"{package} {version(package)}"


def require(owner: Any, names: Iterable[str], package: str, what: str = "calls") -> None:
    """Raise ``IncompatibleRelease`` unless ``owner`` (a class or object) has every attribute of ``names``."""
    label = owner.__qualname__ if isinstance(owner, type) else type(owner).__qualname__
    for name in names:
        if not hasattr(owner, name):
            raise IncompatibleRelease(
                f"axolotl-aot {what} {label}.{name}, which {_installed(package)} does not have (checked on "
                f"{CHECKED}). Install a supported release (README, 'Install'); training would otherwise "
                "not run the AOT loss."
            )


def _checked_trainer(cls: type, extra: tuple[str, ...] = ()) -> type:
    require(cls, (*TRAINER_METHODS, *extra), "trl", "overrides or calls")
    return cls


# -- trainers and their training arguments --------------------------------------------------------


def dpo_trainer() -> type:
    """axolotl's DPO trainer (TRL's ``DPOTrainer``), the base of ``rl: aot``'s trainer; checked."""
    from axolotl.core.trainers.dpo.trainer import AxolotlDPOTrainer

    return _checked_trainer(AxolotlDPOTrainer)


def kto_trainer() -> type:
    """axolotl's KTO trainer (TRL's ``KTOTrainer``), the base of ``rl: aot_unpaired``'s trainer; checked."""
    from axolotl.core.trainers.trl import AxolotlKTOTrainer

    return _checked_trainer(AxolotlKTOTrainer, KTO_METHODS)


def rl_training_args() -> tuple[type, type]:
    """axolotl's DPO and KTO training-arguments classes (which carry the plugins' mixins).

    Importing them builds axolotl's training-arguments classes: call it only once the plugin has
    registered (any axolotl command), or where the AOT settings are added by subclassing (``factory``).
    """
    from axolotl.core.trainers.dpo.args import AxolotlDPOConfig
    from axolotl.core.training_args import AxolotlKTOConfig

    return AxolotlDPOConfig, AxolotlKTOConfig


def check_trainer_state(trainer: Any) -> None:
    """The attributes TRL's constructor sets that the AOT trainers read or write (TRL 1.9, 1.14)."""
    require(trainer, TRAINER_STATE, "trl", "reads")


def metrics(trainer: Any, mode: str) -> dict[str, list[float]]:
    """TRL's per-mode metric buffers (``_metrics``), which its ``log`` averages and clears."""
    return trainer._metrics[mode]


def count_train_tokens(trainer: Any, tokens: int) -> int:
    """Add to TRL's running count of training tokens (``_total_train_tokens``); the new total."""
    trainer._total_train_tokens += tokens
    return trainer._total_train_tokens


def trl_training_step(
    trainer: Any, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
) -> Any:
    """TRL's ``training_step`` of ``trainer``, past axolotl 0.19's DPO override, which runs a full
    ``gc.collect()`` and ``torch.cuda.empty_cache()`` after every step (0.36 s a step of the tiny
    benchmark model here; axolotl 0.21 dropped it)."""
    trl_class = next(c for c in type(trainer).__mro__ if c.__module__.startswith("trl."))
    return trl_class.training_step(trainer, model, inputs, num_items_in_batch)


def prepare_inputs(trainer: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """A collated batch on the trainer's device (transformers' ``Trainer._prepare_inputs``)."""
    return trainer._prepare_inputs(batch)


def last_batch_rows(accelerator: Any) -> int | None:
    """At the end of an evaluation loader, how many rows of the last batch (over all ranks) are real.

    accelerate completes the last batch of each rank with rows from the start of the set and
    records the real count in ``gradient_state.remainder``; None when no batch was completed.
    """
    state = accelerator.gradient_state
    if not state.end_of_dataloader or state.remainder <= 0:
        return None
    return state.remainder


# -- TRL helpers the trainers reuse (same signatures in TRL 1.9 and 1.14) -------------------------


def selective_log_softmax(logits: Any, index: Any) -> Any:
    """TRL's memory-lean per-token log-softmax at ``index`` (1.14 adds options; only these two are used)."""
    from trl.trainer.utils import selective_log_softmax as trl_selective_log_softmax

    return trl_selective_log_softmax(logits, index)


def forward_through_wrapper(wrapper: Any, module: Any, method: Callable[..., Any], **kwargs: Any) -> Any:
    """Run ``method`` of ``module`` through ``wrapper``'s forward (TRL's private ``_ForwardRedirection``),
    so that DDP/DeepSpeed hooks fire when the trainers call the backbone directly."""
    from trl.models.utils import _ForwardRedirection

    return _ForwardRedirection()(wrapper, module, method, **kwargs)


def reference_adapter(peft_model: Any) -> contextlib.AbstractContextManager[Any]:
    """The reference of a PEFT policy: TRL's frozen ``ref`` adapter when it made one, else the adapter
    disabled (TRL's ``use_adapter``)."""
    from trl.trainer.utils import use_adapter

    return use_adapter(
        peft_model, adapter_name=TRL_REF_ADAPTER if TRL_REF_ADAPTER in peft_model.peft_config else None
    )


def without_gradient_checkpointing(
    model: Any, kwargs: dict[str, Any] | None
) -> contextlib.AbstractContextManager[Any]:
    """Gradient checkpointing off around a no-grad forward (TRL's ``disable_gradient_checkpointing``)."""
    from trl.models.utils import disable_gradient_checkpointing

    return disable_gradient_checkpointing(model, kwargs)


def gathered_lm_head(*params: Any) -> contextlib.AbstractContextManager[Any]:
    """DeepSpeed ZeRO-3's partitioned LM-head parameters made whole (TRL's ``maybe_gather_lm_head_ctx``);
    a no-op otherwise."""
    from trl.trainer.utils import maybe_gather_lm_head_ctx

    return maybe_gather_lm_head_ctx(*params)


def extract_prompt(row: dict[str, Any]) -> dict[str, Any]:
    """TRL's split of a conversational pair into its shared prompt and the two continuations."""
    from trl.data_utils import extract_prompt as trl_extract_prompt

    return trl_extract_prompt(row)


# -- axolotl's config, data and model loading -----------------------------------------------------


def dict_default(raw: dict[str, Any]) -> Any:
    """axolotl's ``DictDefault``: a config whose missing keys read as None."""
    from axolotl.utils.dict import DictDefault

    return DictDefault(raw)


def prepare_plugins(cfg: Any) -> None:
    """Register the config's plugins, as ``axolotl.cli.config.load_cfg`` does (rewrites ``rl: aot``)."""
    from axolotl.cli.config import prepare_plugins as axolotl_prepare_plugins

    axolotl_prepare_plugins(cfg)


def validate_config(cfg: Any, capabilities: dict[str, Any] | None = None) -> Any:
    """axolotl's schema validation of ``cfg``, against this machine's capabilities or ``capabilities``."""
    from axolotl.cli.config import gpu_capabilities
    from axolotl.utils.config import validate_config as axolotl_validate_config

    machine, env_capabilities = gpu_capabilities()
    return axolotl_validate_config(
        cfg, capabilities=capabilities or machine, env_capabilities=env_capabilities
    )


def normalize_config(cfg: Any) -> None:
    """axolotl's normalisation of a validated config (device, batch sizes, dataset entries)."""
    from axolotl.utils.config import normalize_cfg_datasets
    from axolotl.utils.config import normalize_config as axolotl_normalize_config

    axolotl_normalize_config(cfg)
    normalize_cfg_datasets(cfg)


def schema_fields() -> dict[str, Any]:
    """The fields of axolotl's config schema merged with the registered plugins' models."""
    from axolotl.integrations.config import merge_input_args

    schema, _ = merge_input_args()
    return schema.model_fields


def axolotl_fields() -> set[str]:
    """The keys of axolotl's own schema, without plugins (0.19 has no ``eval_on_start``)."""
    from axolotl.utils.schemas.config import AxolotlInputConfig

    return set(AxolotlInputConfig.model_fields)


def load_plugin(name: str) -> Any:
    """Import a plugin class by its ``plugins:`` name, as axolotl does."""
    from axolotl.integrations.base import load_plugin as axolotl_load_plugin

    return axolotl_load_plugin(name)


def cut_cross_entropy_missing() -> str | None:
    """Why axolotl's Cut Cross Entropy plugin would stop the model load on this machine, or None.

    Its own requirements check (``CutCrossEntropyPlugin._check_requirements``, 0.19 and 0.21: torch
    >= 2.4 and axolotl's fork of the package, installable from git only), which it runs in
    ``pre_model_load``.
    """
    from axolotl.integrations.cut_cross_entropy import CutCrossEntropyPlugin

    try:
        CutCrossEntropyPlugin()._check_requirements()
    except ImportError as error:
        return str(error)
    return None


def plugin_autoloaded() -> bool:
    """Whether the installed axolotl registers ``AOTPlugin`` without a ``plugins:`` line.

    True on axolotl >= 0.21 (which loads the ``axolotl.plugins`` entry points of installed
    distributions) when this distribution's entry point is installed; False on 0.19.
    """
    from axolotl.integrations import base

    if not hasattr(base, "get_builtin_plugins"):  # axolotl < 0.21: no entry-point plugins
        return False
    return PLUGIN in base.get_builtin_plugins()


def prompt_strategy(family: str, name: str, cfg: dict[str, Any], index: int) -> Any:
    """axolotl's row transform for dataset ``type: name`` of entry ``index`` of the ``dpo``/``kto`` family."""
    load = importlib.import_module(f"axolotl.prompt_strategies.{family}").load
    return load(name, cfg, dataset_idx=index)


def load_preference_datasets(cfg: Any) -> Any:
    """axolotl's preference-data loading for training (``TrainDatasetMeta``: train and eval sets)."""
    from axolotl.common.datasets import load_preference_datasets as axolotl_load

    return axolotl_load(cfg=cfg)


def prepare_preference_datasets(cfg: Any, tokenizer: Any) -> Any:
    """axolotl's preference-data preparation: (train, eval) sets formatted as training formats them."""
    from axolotl.utils.data.rl import prepare_preference_datasets as axolotl_prepare

    return axolotl_prepare(cfg, tokenizer)


def load_split(cfg: Any, split: str) -> Any:
    """axolotl's private ``_load_split``: one split formatted as training formats it (0.19, 0.21)."""
    from axolotl.utils.data.rl import _load_split

    return _load_split(cfg, split=split)


def dataset_entries(entries: list[Any]) -> Iterable[Any]:
    """Each dataset entry of a config, one per ``name:`` when it lists several."""
    from axolotl.utils.data.shared import datasets_with_name_generator

    return datasets_with_name_generator(entries)


def load_source(entry: Any, token: Any) -> Any:
    """A dataset entry's rows as stored, before axolotl's formatting and filtering."""
    from axolotl.utils.data.shared import load_dataset_with_config

    return load_dataset_with_config(entry, token, streaming=False)


def load_tokenizer(cfg: Any) -> Any:
    """axolotl's tokenizer of a config (its chat template and special tokens applied)."""
    from axolotl.loaders import load_tokenizer as axolotl_load_tokenizer

    return axolotl_load_tokenizer(cfg)


def configure_logging() -> None:
    """axolotl's logging configuration, which importing its CLI installs (as training does)."""
    with contextlib.suppress(ImportError):
        importlib.import_module("axolotl.cli")


# -- what differs between the supported axolotl releases ------------------------------------------

TRL_REF_ADAPTER = "ref"


def drop_trl_ref_adapter(model: Any) -> None:
    """Make TRL score the reference of a trained PEFT adapter with the adapter disabled.

    Given a ``PeftModel`` and no reference model, TRL's DPO and KTO trainers (1.9 and 1.14)
    copy the adapter into a frozen adapter named "ref" and compute reference log-probs with
    it. In training the copy is the fresh, zero-initialised adapter, i.e. the base model;
    for an already trained adapter it is the adapter itself, and every reward would be 0.
    Without the copy TRL disables the adapter: the reference is the base, as it was in training.
    """
    if TRL_REF_ADAPTER in getattr(model, "peft_config", {}):
        model.delete_adapter(TRL_REF_ADAPTER)


def load_saved_adapter(cfg: Any) -> Callable[[], None]:
    """Make axolotl's model loader put ``lora_model_dir``'s adapter on an RL policy; call the
    returned function once it has (``post_lora_load``).

    For ``rl: dpo``/``kto`` with an adapter, ``ModelLoader._load_adapters`` (0.19, 0.21) builds
    only the LoRA config from ``cfg`` (TRL then wraps the model in a fresh adapter) unless
    ``merge_lora`` is set; then it loads the saved adapter with ``PeftModel.from_pretrained``, as
    for SFT. The loader reads ``merge_lora`` only to choose that branch (0.21: and to skip
    kernels' merge-aware setup).
    """
    previous = cfg.merge_lora
    cfg.merge_lora = True

    def restore() -> None:
        cfg.merge_lora = previous

    return restore


def axolotl_evaluating() -> bool:
    """Whether ``axolotl.evaluate.evaluate`` (``axolotl evaluate``: score a model, train nothing) is running.

    It builds the trainer through the same builder and plugin hooks as training, with no flag in
    ``cfg``; it skips ``post_trainer_create`` and the plugin's ``load_datasets``, but that absence
    is only known once it is too late. Its frame on the call stack is the one certain sign, on
    axolotl 0.19 and 0.21 alike (``send_errors`` wraps it with ``functools.wraps``; 0.21's
    ``enable_for_evaluation`` callback hook has no 0.19 counterpart).
    """
    module = sys.modules.get("axolotl.evaluate")
    if module is None:
        return False
    code = inspect.unwrap(module.evaluate).__code__
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def skip_cuda_peer_probe() -> Callable[[], None]:
    """Answer axolotl's CUDA peer-access probe without CUDA while a CPU-only multi-process run loads its
    config; call the returned function to put the probe back.

    axolotl 0.21's ``load_cfg`` (``prepare_optim_env``) calls ``torch.cuda.can_device_access_peer``
    for every multi-process run; with a CUDA build of torch and no driver it raises instead of
    returning (0.19 with a CPU build of torch gets an AssertionError, which axolotl catches).
    Peer access between GPUs is moot when there are none. The plugin's ``register`` (inside
    ``load_cfg``, before the probe) answers it and ``load_datasets`` (the next hook) restores it.
    """
    from axolotl.utils import environment

    probe = environment.check_cuda_p2p_support
    environment.check_cuda_p2p_support = lambda: True

    def restore() -> None:
        environment.check_cuda_p2p_support = probe

    return restore
