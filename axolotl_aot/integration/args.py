"""The YAML keys the AOT plugin adds to an axolotl config.

Axolotl merges this pydantic model into its own schema (``AOTPlugin.get_input_args``), so every
check here runs at config time, inside ``axolotl.cli.train`` and ``aot-cli validate`` alike,
before any model is loaded: the keys' own values, their combinations, and the first key the
audit table (``settings``) refuses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from axolotl_aot.integration.settings import setting_problems
from axolotl_aot.ot.losses import Cost

SortScope = Literal["local", "world", "step"]


class AOTArgs(BaseModel):
    """Configuration of Alignment via Optimal Transport (arXiv:2406.05882)."""

    aot_mode: Literal["paired", "unpaired"] | None = Field(
        default=None,
        json_schema_extra={
            "description": "Set by the plugin from `rl: aot` / `rl: aot_unpaired`; do not set."
        },
    )
    aot_cost: Cost = Field(
        default="logistic",
        json_schema_extra={"description": "Convex relaxation of the dominance violation."},
    )
    aot_sort_scope: SortScope = Field(
        default="world",
        json_schema_extra={
            "description": "Which samples enter one sort: `local` = this device's micro-batch (as TRL), "
            "`world` = the micro-batches of every data-parallel rank, `step` = every micro-batch of the "
            "optimizer step on every rank (one extra no-grad forward per micro-batch)."
        },
    )
    aot_label_smoothing: float = Field(
        default=0.0,
        ge=0.0,
        lt=0.5,
        json_schema_extra={
            "description": "Label smoothing eps of the logistic cost (cDPO-style), in [0, 0.5)."
        },
    )
    aot_logits_chunk_size: int = Field(
        default=256,
        ge=0,
        json_schema_extra={
            "description": "Completion tokens per LM-head chunk when computing log-probs without the "
            "[tokens, vocab] logits (smaller: less memory, more kernel launches); 0 = the model's full "
            "logits. Models whose head cannot be reproduced exactly use the full logits with a logged reason."
        },
    )
    aot_padding_free: bool = Field(
        default=True,
        json_schema_extra={
            "description": "Pack each micro-batch's sequences into rows without padding (position_ids "
            "restarting per sequence), so that the model computes only real tokens; log-probs equal the "
            "padded batch's. Models or attention implementations that cannot separate packed sequences "
            "(other than sdpa, eager, flash_attention_2/3) are padded, with the reason logged once. "
            "false: pad as TRL does."
        },
    )
    router_aux_loss_coef: float | None = Field(
        default=None,
        ge=0.0,
        allow_inf_nan=False,
        json_schema_extra={
            "description": "Mixture-of-Experts models: weight of the router load-balancing loss added to "
            "the AOT loss, as TRL's DPO/KTO trainers add it (TRL's `router_aux_loss_coef`, which axolotl "
            "does not pass on). Unset: TRL's default (0.001 in TRL 1.9; the model config's in TRL 1.14). "
            "0 turns it off."
        },
    )
    aot_label_ratio: Literal["proportional", "equal"] = Field(
        default="proportional",
        json_schema_extra={
            "description": "rl: aot_unpaired: label mix of each micro-batch, the dataset's proportion or 1:1."
        },
    )

    @model_validator(mode="before")
    @classmethod
    def check_aot_combinations(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if not data.get("aot_mode"):
            if data.get("router_aux_loss_coef") is not None:
                raise ValueError(
                    "router_aux_loss_coef is a key of the AOT plugin, read for rl: aot and rl: aot_unpaired "
                    "only; axolotl does not pass it to TRL for other rl values. Remove router_aux_loss_coef."
                )
            return data
        refused = [p for p in setting_problems(data) if p.kind == "refused"]
        if refused:
            raise ValueError(refused[0].message)
        smoothing, cost = data.get("aot_label_smoothing") or 0.0, data.get("aot_cost", "logistic")
        if smoothing and cost != "logistic":
            raise ValueError(
                f"aot_label_smoothing: {smoothing!r} applies to aot_cost: logistic only, not {cost!r}; "
                "set aot_label_smoothing: 0"
            )
        batch = data.get("micro_batch_size")
        if data["aot_mode"] == "unpaired" and batch is not None and batch < 2:
            raise ValueError(
                f"micro_batch_size: {batch} is too small for rl: aot_unpaired: every micro-batch needs a "
                "positive and a negative sample; use micro_batch_size >= 2"
            )
        return data
