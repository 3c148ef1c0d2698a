"""Private TRL helpers the AOT trainers reuse, imported in one place.

TRL 1.9 (axolotl 0.19) and TRL 1.14 (axolotl 0.21) both define these with the same
signatures; they are private (underscored or undocumented), so a future rename breaks here
and nowhere else.

- ``ForwardRedirection``: runs a method of the wrapped module through the wrapper's forward
  (DDP, DeepSpeed), so its hooks fire when the trainers call the backbone directly.
- ``use_adapter``: the LoRA adapter disabled (or TRL's ``ref`` adapter active) for the reference pass.
- ``disable_gradient_checkpointing``: TRL turns it off around its no-grad reference forward.

Reference log-probs: in both versions ``_precompute_ref_logps`` (``precompute_ref_log_probs:
true``) calls the public ``compute_ref_log_probs(model, inputs)``, which TRL 1.14 wraps around
a private ``_compute_ref_log_probs``; overriding the public method covers both versions.
"""

from __future__ import annotations

from trl.models.utils import _ForwardRedirection as ForwardRedirection
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import use_adapter

__all__ = ["ForwardRedirection", "disable_gradient_checkpointing", "use_adapter"]
