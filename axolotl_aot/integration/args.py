"""The YAML keys the AOT plugin adds to an axolotl config, and what they may not be combined with.

Axolotl merges this pydantic model into its own schema (``AOTPlugin.get_input_args``), so
every check here runs at config time, inside ``axolotl.cli.train`` and ``aot-cli validate``
alike, before any model is loaded.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from axolotl_aot.ot.losses import Cost

SortScope = Literal["local", "world", "step"]

# Options that cannot work with AOT, and why: rejected at config time, not at step 1000.
INCOMPATIBLE: dict[str, str] = {
    "sample_packing": "AOT scores whole (prompt, completion) sequences; packing merges them",
    "eval_sample_packing": "AOT scores whole (prompt, completion) sequences; packing merges them",
    "dpo_padding_free": "the AOT trainers read padded batches",
    "dpo_use_weighting": "per-pair weights break the uniform measures that the OT sort couples",
    "dpo_use_liger_kernel": "Liger's fused DPO loss computes its own loss, not AOT's; the AOT trainers "
    "already compute log-probs without the vocabulary logits (tune the chunk with aot_logits_chunk_size)",
    "dpo_loss_type": "rl: aot/aot_unpaired sets the loss; use aot_cost to choose the cost",
    "dpo_loss_weights": "rl: aot/aot_unpaired sets the loss; there is one loss to weight",
    "dpo_label_smoothing": "use aot_label_smoothing",
    "kto_desirable_weight": "per-label weights break the uniform measures that the OT sort couples",
    "kto_undesirable_weight": "per-label weights break the uniform measures that the OT sort couples",
}


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
    aot_label_ratio: Literal["proportional", "equal"] = Field(
        default="proportional",
        json_schema_extra={
            "description": "rl: aot_unpaired: label mix of each micro-batch, the dataset's proportion or 1:1."
        },
    )

    @model_validator(mode="before")
    @classmethod
    def check_aot_combinations(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("aot_mode"):
            return data
        rl = "aot" if data["aot_mode"] == "paired" else "aot_unpaired"
        for key, reason in INCOMPATIBLE.items():
            if data.get(key):
                raise ValueError(
                    f"{key}: {data[key]!r} cannot be used with rl: {rl}: {reason}. Remove {key}."
                )
        if (data.get("context_parallel_size") or 1) > 1:
            raise ValueError(
                f"context_parallel_size: {data['context_parallel_size']} cannot be used with rl: {rl}: "
                "the AOT trainers score whole sequences on each rank. Remove context_parallel_size."
            )
        beta = data.get("rl_beta")
        if beta is not None and not 0 < beta < float("inf"):
            raise ValueError(
                f"rl_beta must be a finite number > 0 for rl: {rl}; got {beta!r} (the paper uses 0.01)"
            )
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
