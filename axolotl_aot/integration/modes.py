"""The two AOT modes and everything that follows from a config's ``rl:`` value.

``rl: aot`` trains on paired rows through axolotl's DPO data pipeline; ``rl: aot_unpaired`` on
unpaired rows through its KTO pipeline. The plugin, the config checks, the data checks,
``aot-cli validate``, ``report`` and ``smoke`` all read this one map instead of restating it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    """One AOT mode: its ``rl:`` value and how it maps onto axolotl and TRL."""

    rl: str  # the YAML value
    name: str  # ``aot_mode``, which the plugin records: paired or unpaired
    axolotl_rl: str  # the rl axolotl validates and builds, whose data pipeline is reused
    trainer: str  # dotted path of the trainer class (axolotl's ``trainer_cls``)
    columns: tuple[str, ...]  # what the mode's dataset types produce per row
    unit: str  # what one sort counts
    chat_type: str  # the dataset type for chat-format rows
    loss_type: str | None  # the TRL ``loss_type`` the plugin sets (KTO's without the KL pass)

    @property
    def paired(self) -> bool:
        return self.name == "paired"


PAIRED = Mode(
    rl="aot",
    name="paired",
    axolotl_rl="dpo",
    trainer="axolotl_aot.integration.trainers.AOTPairedTrainer",
    columns=("prompt", "chosen", "rejected"),
    unit="pairs",
    chat_type="chat_template.argilla_chat",
    loss_type=None,
)
UNPAIRED = Mode(
    rl="aot_unpaired",
    name="unpaired",
    axolotl_rl="kto",
    trainer="axolotl_aot.integration.trainers.AOTUnpairedTrainer",
    columns=("prompt", "completion", "label"),
    unit="samples",
    chat_type="axolotl_aot_chat.unpaired",
    loss_type="apo_zero_unpaired",
)
MODES: tuple[Mode, ...] = (PAIRED, UNPAIRED)
BY_RL: dict[str, Mode] = {mode.rl: mode for mode in MODES}
BY_NAME: dict[str, Mode] = {mode.name: mode for mode in MODES}
# The row family of the other preference methods axolotl trains, for comparing runs in a report.
OTHER_METHODS: dict[str, Mode] = {"dpo": PAIRED, "ipo": PAIRED, "simpo": PAIRED, "kto": UNPAIRED}


def of_config(cfg: object) -> Mode | None:
    """The mode of a config: a raw YAML dict or axolotl's ``DictDefault``, before the plugin rewrote
    ``rl: aot*`` (``rl``) or after (``aot_mode``); None for any other method."""
    name, rl = _get(cfg, "aot_mode"), _get(cfg, "rl")
    if isinstance(name, str) and name in BY_NAME:
        return BY_NAME[name]
    return BY_RL.get(rl) if isinstance(rl, str) else None


def data_mode(cfg: object) -> Mode | None:
    """The mode whose rows a config's dataset types produce: its own, or for another preference method
    (``rl: dpo``, ``kto``, ...) its row family; None for any other method."""
    rl = _get(cfg, "rl")
    return of_config(cfg) or OTHER_METHODS.get(str(getattr(rl, "value", rl)))


def _get(cfg: object, key: str) -> object:
    """``cfg[key]`` of a dict or ``DictDefault``, an attribute of anything else; None when absent."""
    return cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)
