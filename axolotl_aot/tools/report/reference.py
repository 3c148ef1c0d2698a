"""Which model a checkpoint is scored against, and the check that it is the one it was trained from.

A reward is log pi_ckpt - log pi_ref: scored against another model than the run's reference, every
number of the report describes that other model (measured: a violation fraction of 0.60 where the
run's own evaluation gave 0.01). The reference is ``--ref``, else the run config's ``base_model``;
the checkpoint names its own base where it can (``recorded_base``). A mismatch is refused unless
the caller forces the reference (``aot-cli report --force-ref``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from axolotl_aot.integration.checkpoints import checkpoint_step


def recorded_base(checkpoint: Path) -> tuple[str, str] | None:
    """(the model ``checkpoint`` names as its base, where it says so), or None where it names none.

    An adapter: ``base_model_name_or_path`` of its ``adapter_config.json`` (PEFT writes the name or
    path the base was loaded from). A full model: ``base_model`` of the model card TRL's trainers
    write to the output_dir (a checkpoint-N folder's parent); TRL records hub ids only, not local
    folders, and a saved config.json keeps no name at all.
    """
    adapter = checkpoint / "adapter_config.json"
    if adapter.exists():
        name = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
        return (str(name), f"{adapter.name}'s base_model_name_or_path") if name else None
    cards = [checkpoint / "README.md"]
    if checkpoint_step(checkpoint) is not None:
        cards.append(checkpoint.parent / "README.md")
    for card in cards:
        if card.is_file():
            from huggingface_hub import ModelCard

            name = ModelCard.load(card).data.base_model
            if isinstance(name, str) and name:
                return name, f"the model card {card}"
    return None


def same_model(a: str, b: str) -> bool:
    """Whether two model names or paths name the same model: local folders by their resolved path,
    hub ids as strings."""
    if a == b:
        return True
    first, second = Path(a).expanduser(), Path(b).expanduser()
    if first.exists() and second.exists():
        return first.resolve() == second.resolve()
    return os.path.normpath(a) == os.path.normpath(b)


def reference_problem(checkpoint: Path, config_base: str | None, ref: str | None) -> str | None:
    """Why scoring ``checkpoint`` against ``ref`` (else the config's ``base_model``) would score it
    against another model than the one it was trained from, or None.

    The checkpoint's own record (``recorded_base``) decides where it has one; otherwise ``--ref``
    must be the config's ``base_model``.
    """
    reference = ref or config_base
    if reference is None:
        return None
    given = f"--ref {ref}" if ref else f"the config's base_model {config_base}"
    force = f"--force-ref scores against {reference} anyway"
    recorded = recorded_base(checkpoint)
    if recorded is not None:
        base, source = recorded
        if same_model(base, reference):
            return None
        return (
            f"{checkpoint} was trained from {base} ({source}), but the reference would be {given}: "
            f"the rewards would compare it with another model. Pass --ref {base}, or fix base_model in "
            f"the config; {force}"
        )
    if ref is not None and config_base is not None and not same_model(ref, config_base):
        return (
            f"--ref {ref} is not the config's base_model {config_base}, which the run trained from (and "
            f"{checkpoint} names no base of its own): the rewards would compare it with another model. "
            f"Drop --ref, or fix base_model in the config; {force}"
        )
    return None
