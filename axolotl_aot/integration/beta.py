"""Which beta a run trains with: the one place that decides it.

axolotl passes TRL the first of ``trl.beta``, ``rl_beta`` and ``dpo_beta`` that a config sets
(``rl.py``, ``validation.py check_rl_beta``, 0.19 and 0.21) and drops the others. The AOT plugin
sets ``rl_beta`` to the paper's 0.01 when none is set (``AOTPlugin.register``); a run of another
method that sets none trains with TRL's default.
"""

from __future__ import annotations

from typing import Any

PAPER_BETA = 0.01  # the paper's recommendation (docs/method.md, "Costs"), not TRL's generic 0.1
TRL_BETA = 0.1  # TRL's default


def betas_set(cfg: Any) -> dict[str, Any]:
    """The beta keys a config (raw YAML dict or axolotl's ``DictDefault``) sets, in axolotl's precedence
    (the order below)."""
    trl = cfg.get("trl") if isinstance(cfg.get("trl"), dict) else {}
    values = {"trl.beta": trl.get("beta"), "rl_beta": cfg.get("rl_beta"), "dpo_beta": cfg.get("dpo_beta")}
    return {key: value for key, value in values.items() if value is not None}


def beta(cfg: Any, default: float = TRL_BETA) -> tuple[str | None, Any]:
    """The key whose beta axolotl passes to TRL and its value; ``(None, default)`` when none is set."""
    return next(iter(betas_set(cfg).items()), (None, default))
