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
  ``disable_gradient_checkpointing`` (off around the no-grad reference forward).
- Given a trained PEFT adapter and no reference model, TRL (1.9 and 1.14) copies the adapter into a
  frozen "ref" adapter and scores the reference with it (``drop_trl_ref_adapter``).
"""

from __future__ import annotations

from typing import Any

from axolotl.core.trainers.dpo.args import AxolotlDPOConfig
from axolotl.core.trainers.dpo.trainer import AxolotlDPOTrainer
from axolotl.core.trainers.trl import AxolotlKTOTrainer
from axolotl.core.training_args import AxolotlKTOConfig
from axolotl.utils.data.rl import _load_split as load_split
from trl.models.utils import _ForwardRedirection as ForwardRedirection
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import selective_log_softmax, use_adapter

from axolotl_aot import PLUGIN

__all__ = [
    "PLUGIN",
    "AxolotlDPOConfig",
    "AxolotlDPOTrainer",
    "AxolotlKTOConfig",
    "AxolotlKTOTrainer",
    "ForwardRedirection",
    "disable_gradient_checkpointing",
    "drop_trl_ref_adapter",
    "load_split",
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


def skip_cuda_peer_probe() -> None:
    """Answer axolotl's CUDA peer-access probe without CUDA, for multi-process runs on CPUs.

    axolotl 0.21's ``load_cfg`` (``prepare_optim_env``) calls ``torch.cuda.can_device_access_peer``
    for every multi-process run; with a CUDA build of torch and no driver it raises instead of
    returning (0.19 with a CPU build of torch gets an AssertionError, which axolotl catches).
    Peer access between GPUs is moot when there are none.
    """
    from axolotl.utils import environment

    environment.check_cuda_p2p_support = lambda: True
