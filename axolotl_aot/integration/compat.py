"""Everything that differs between the supported axolotl/TRL stacks, and every private name we use.

Tested stacks (README, "Support"): axolotl 0.19 + TRL 1.9 on Python 3.11, and axolotl 0.21 + TRL 1.14
on Python 3.12. The names below are re-exported, and the rest of the package imports them from
here only, so that a release moving one of them breaks this module's import on that stack.

What differs and how it is handled:
- Plugin loading: axolotl >= 0.21 loads every installed ``axolotl.plugins`` entry point for every
  config (this distribution declares ``axolotl_aot:AOTPlugin``), so ``rl: aot`` works without a
  ``plugins:`` line; 0.19 loads only the plugins the YAML lists (``plugin_autoloaded``).
- ``selective_log_softmax`` (private TRL utility) gained ``temperature`` and ``row_mask`` in TRL 1.14;
  only the two positional arguments of TRL 1.9 are used.
- ``_load_split`` (private axolotl loader used by ``aot-cli report`` to format evaluation rows exactly
  as training does) has the same signature in 0.19 and 0.21.
- TRL 1.14's ``compute_ref_log_probs`` wraps ``_compute_ref_log_probs`` (for Liger's chunked path,
  which the AOT trainers reject); the public method behaves the same on both stacks, so only it is
  called.
- Private TRL helpers the trainers reuse, with the same signatures in TRL 1.9 and 1.14:
  ``ForwardRedirection`` (runs a method of the wrapped module through the wrapper's forward, so
  DDP/DeepSpeed hooks fire when the trainers call the backbone directly), ``use_adapter`` (the LoRA
  adapter disabled, or TRL's ``ref`` adapter active, for the reference pass) and
  ``disable_gradient_checkpointing`` (off around the no-grad reference forward), and
  ``maybe_gather_lm_head_ctx`` (public in ``trl.trainer.utils``: DeepSpeed ZeRO-3's partitioned LM
  head made whole for the chunked log-probs, a no-op otherwise).
- Given a trained PEFT adapter and no reference model, TRL (1.9 and 1.14) copies the adapter into a
  frozen "ref" adapter and scores the reference with it (``drop_trl_ref_adapter``).
- For ``rl: dpo``/``kto`` with an adapter, axolotl's model loader (0.19 and 0.21) never reads
  ``lora_model_dir``: it hands TRL a LoRA config, which TRL applies as a fresh adapter
  (``load_saved_adapter`` switches the loader to the saved one, for ``axolotl evaluate``).
- Neither axolotl tells a plugin that ``axolotl evaluate`` (not training) built the trainer: both
  build it through ``axolotl.evaluate.evaluate``, whose frame on the call stack is the sign
  (``axolotl_evaluating``; 0.21's ``enable_for_evaluation`` callback hook has no 0.19 counterpart).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from axolotl.core.trainers.dpo.args import AxolotlDPOConfig
from axolotl.core.trainers.dpo.trainer import AxolotlDPOTrainer
from axolotl.core.trainers.trl import AxolotlKTOTrainer
from axolotl.core.training_args import AxolotlKTOConfig
from axolotl.utils.data.rl import _load_split as load_split
from trl.models.utils import _ForwardRedirection as ForwardRedirection
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import maybe_gather_lm_head_ctx, selective_log_softmax, use_adapter

from axolotl_aot import PLUGIN

__all__ = [
    "PLUGIN",
    "AxolotlDPOConfig",
    "AxolotlDPOTrainer",
    "AxolotlKTOConfig",
    "AxolotlKTOTrainer",
    "ForwardRedirection",
    "axolotl_evaluating",
    "disable_gradient_checkpointing",
    "drop_trl_ref_adapter",
    "load_saved_adapter",
    "load_split",
    "maybe_gather_lm_head_ctx",
    "plugin_autoloaded",
    "selective_log_softmax",
    "skip_cuda_peer_probe",
    "use_adapter",
]


def plugin_autoloaded() -> bool:
    """Whether the installed axolotl registers ``AOTPlugin`` without a ``plugins:`` line.

    True on axolotl >= 0.21 (which loads the ``axolotl.plugins`` entry points of installed
    distributions) when this distribution's entry point is installed; False on 0.19.
    """
    from axolotl.integrations import base

    if not hasattr(base, "get_builtin_plugins"):  # axolotl < 0.21: no entry-point plugins
        return False
    return PLUGIN in base.get_builtin_plugins()


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

    For ``rl: dpo``/``kto`` with an adapter, ``ModelLoader._load_adapters`` builds only the LoRA
    config from ``cfg`` (TRL then wraps the model in a fresh adapter) unless ``merge_lora`` is set;
    then it loads the saved adapter with ``PeftModel.from_pretrained``, as for SFT. The loader
    reads ``merge_lora`` only to choose that branch (0.21: and to skip kernels' merge-aware setup).
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
    axolotl 0.19 and 0.21 alike (``send_errors`` wraps it with ``functools.wraps``).
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


def skip_cuda_peer_probe() -> None:
    """Answer axolotl's CUDA peer-access probe without CUDA, for multi-process runs on CPUs.

    axolotl 0.21's ``load_cfg`` (``prepare_optim_env``) calls ``torch.cuda.can_device_access_peer``
    for every multi-process run; with a CUDA build of torch and no driver it raises instead of
    returning (0.19 with a CPU build of torch gets an AssertionError, which axolotl catches).
    Peer access between GPUs is moot when there are none.
    """
    from axolotl.utils import environment

    environment.check_cuda_p2p_support = lambda: True
