"""What this project relies on inside TRL and axolotl beyond their public APIs, in one place.

Each helper says what it depends on and on which versions (axolotl 0.19 / TRL 1.9 and
axolotl 0.21 / TRL 1.14).
"""

from __future__ import annotations

from typing import Any

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
