"""Test harness, never shipped: an axolotl plugin (``plugins: [engine_probe.EngineProbe]``) that
records, on every rank, which engine really trains the model, so that a sharded test can assert the
engine before it asserts the outcome.

After the first optimizer step each rank writes ``OUTPUT_DIR/engine-rank{RANK}.json``: the type of
the wrapped model, the LM head weight's type and the shape this rank holds, DeepSpeed's ZeRO stage
and whether parameters are partitioned, and the memory training itself took: the peak resident
set during training above the resident set when it began (Linux ``VmHWM``, reset at the start).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback


class EngineProbe(BasePlugin):
    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[TrainerCallback]:
        return [_Probe(trainer, Path(cfg.output_dir))]


class _Probe(TrainerCallback):
    def __init__(self, trainer: Any, out: Path) -> None:
        self.trainer, self.out, self.record = trainer, out, {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start_kib = _status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.record:
            self.record = engine_record(self.trainer)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.record["training_peak_mib"] = (_status("VmHWM") - self.start_kib) / 1024
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"engine-rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(self.record))


def engine_record(trainer: Any) -> dict[str, Any]:
    model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    weight = inner.get_output_embeddings().weight
    local = weight.to_local() if type(weight).__name__ == "DTensor" else weight
    zero = trainer.accelerator.state.deepspeed_plugin
    return {
        "distributed_type": str(trainer.accelerator.distributed_type),
        "wrapped": type(trainer.model_wrapped).__name__,
        "lm_head_type": type(weight).__name__,
        "lm_head_local_shape": list(local.shape),
        "lm_head_full_shape": list(getattr(weight, "ds_shape", weight.shape)),
        "zero_stage": zero.zero_stage if zero is not None else None,
        "partitioned": sum(1 for p in model.parameters() if hasattr(p, "ds_id") and p.numel() == 0),
        "parameters": sum(1 for _ in model.parameters()),
    }


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field, in KiB."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])
