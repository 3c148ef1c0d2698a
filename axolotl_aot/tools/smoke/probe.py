"""Listed in a smoke config's ``plugins:`` only: records what the run really did, in a JSON file.

The file (``$AOT_SMOKE_OBSERVATIONS``) is rewritten after every event, so a run that dies
still leaves what it reached. Observations are read back from the live objects: the model's
attention kernel and 4-bit modules, every micro-batch's loss (for finiteness) and every logged
loss (the number the training log shows), the gradients before each optimizer step, the
weights after it, the reference log-probs, the saved checkpoint reloaded.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from pathlib import Path
from typing import Any

import torch
from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback

ENV = "AOT_SMOKE_OBSERVATIONS"


class Observations(dict):
    """A dict written to ``$AOT_SMOKE_OBSERVATIONS`` on every change (rank 0 only)."""

    def record(self, key: str, value: Any) -> None:
        self[key] = value
        if int(os.environ.get("RANK", "0")) == 0 and os.environ.get(ENV):
            Path(os.environ[ENV]).write_text(json.dumps(self, default=str))


OBSERVED = Observations(stages=[])


def _reach(stage: str) -> None:
    OBSERVED.record("stages", [*OBSERVED["stages"], stage])


class SmokeProbe(BasePlugin):
    def register(self, cfg: Any) -> None:
        # axolotl loaded the config with its plugins (``aot-cli smoke`` validated it before the run);
        # not load_datasets: axolotl 0.21 runs the auto-loaded AOTPlugin's, which loads the data, first.
        _reach("config")

    def pre_model_load(self, cfg: Any) -> None:
        _reach("data")

    def post_model_load(self, cfg: Any, model: Any) -> None:
        if "model" not in OBSERVED["stages"]:  # the policy; a separate reference model loads after it
            _reach("model")

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[TrainerCallback]:
        _observe_model(trainer)
        _wrap_reference(trainer)
        _wrap_training_step(trainer)
        return [SmokeCallback(trainer, str(cfg.base_model))]


def _observe_model(trainer: Any) -> None:
    import bitsandbytes as bnb

    model = trainer.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    dataset = trainer.train_dataset
    OBSERVED.record(
        "model",
        {
            "class": type(base).__name__,
            "attention": base.config._attn_implementation,
            "linear4bit": len(quantized),
            "quantized4bit": sum(getattr(m.weight, "quant_state", None) is not None for m in quantized),
            "dtype": str(next(p for p in base.parameters() if p.is_floating_point()).dtype),
            "gradient_checkpointing": bool(getattr(base, "is_gradient_checkpointing", False)),
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "peft": hasattr(model, "get_base_model"),
            "reference_model": trainer.ref_model is not None,
            "world_size": trainer.args.world_size,
            "micro_batch_size": trainer.args.per_device_train_batch_size,
        },
    )
    OBSERVED.record("data", {"rows": len(dataset), "columns": list(dataset.column_names)})
    _reach("trainer")


def _wrap_reference(trainer: Any) -> None:
    compute = trainer.compute_ref_log_probs

    def observed(*args: Any, **kwargs: Any) -> Any:
        result = compute(*args, **kwargs)
        tensors = [t for t in (result if isinstance(result, tuple) else (result,)) if torch.is_tensor(t)]
        reference = OBSERVED.get("reference", {"calls": 0, "finite": True, "values": 0})
        reference["calls"] += 1
        reference["values"] += sum(t.numel() for t in tensors)
        reference["finite"] = reference["finite"] and all(bool(torch.isfinite(t).all()) for t in tensors)
        OBSERVED.record("reference", reference)
        return result

    trainer.compute_ref_log_probs = observed


def _wrap_training_step(trainer: Any) -> None:
    """Every micro-batch's loss, to find a NaN: the logged loss hides it (``logging_nan_inf_filter``).

    Not the loss to show: the Trainer returns it divided by the accumulation steps (it sums
    them into the logged loss), so it reads ln 2 / gradient_accumulation_steps where the log
    says ln 2. The loss shown is the logged one (``SmokeCallback.on_log``).
    """
    step = trainer.training_step

    def observed(*args: Any, **kwargs: Any) -> Any:
        loss = step(*args, **kwargs)
        OBSERVED.record("losses", [*OBSERVED.get("losses", []), float(loss.detach().float().sum())])
        return loss

    trainer.training_step = observed


class SmokeCallback(TrainerCallback):
    def __init__(self, trainer: Any, base_model: str) -> None:
        self.trainer = trainer
        self.base_model = base_model
        self.before: dict[str, torch.Tensor] = {}
        self.started = 0.0

    def _trainable(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.trainer.model.named_parameters() if p.requires_grad}

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        grads = [p.grad for p in self._trainable().values() if p.grad is not None]
        norm = (
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
            if grads
            else None
        )
        OBSERVED.record(
            "gradients",
            [
                *OBSERVED.get("gradients", []),
                {
                    "with_grad": len(grads),
                    "trainable": len(self._trainable()),
                    "norm": None if norm is None else float(norm),
                },
            ],
        )
        self.before = {n: p.detach().clone() for n, p in self._trainable().items()}

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        after = self._trainable()
        changed = sum(not torch.equal(self.before[n], after[n].detach()) for n in self.before)
        OBSERVED.record("changed", [*OBSERVED.get("changed", []), changed])
        finite = all(bool(torch.isfinite(p).all()) for p in after.values())
        OBSERVED.record("weights_finite", [*OBSERVED.get("weights_finite", []), finite])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.cuda.is_available():
            peak, device = torch.cuda.max_memory_allocated(), "CUDA allocated"
        else:
            peak, device = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process RSS"
        OBSERVED.record(
            "step_seconds", [*OBSERVED.get("step_seconds", []), time.perf_counter() - self.started]
        )
        OBSERVED.record("peak_memory", {"bytes": peak, "measure": device})

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if logs and "aot/sort_size" in logs:
            OBSERVED.record("sort_sizes", [*OBSERVED.get("sort_sizes", []), logs["aot/sort_size"]])
        if logs and "loss" in logs:  # the training loss, as the log and trainer_state.json show it
            OBSERVED.record("logged_losses", [*OBSERVED.get("logged_losses", []), float(logs["loss"])])

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            try:
                detail = _reload_matches(self.trainer.model, folder, self.base_model)
                OBSERVED.record("checkpoint", {"ok": True, "detail": detail})
            except Exception as err:  # any failure to reload is the finding
                OBSERVED.record(
                    "checkpoint", {"ok": False, "detail": f"{folder.name}: {type(err).__name__}: {err}"}
                )


def _reload_matches(model: Any, folder: Path, base_model: str) -> str:
    """Load the checkpoint as a user would and compare its trainable weights with the live ones."""
    from transformers import AutoModelForCausalLM

    if hasattr(model, "get_base_model"):
        from peft import PeftModel, get_peft_model_state_dict

        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model), folder)
        live, saved = get_peft_model_state_dict(model), get_peft_model_state_dict(reloaded)
    else:
        reloaded = AutoModelForCausalLM.from_pretrained(folder)
        live, saved = model.state_dict(), reloaded.state_dict()
    names = [n for n in saved if n in live]
    if not names:
        raise ValueError("no weight of the checkpoint matches the trained model's")
    differ = [n for n in names if not _same(live[n], saved[n])]
    if differ:
        raise ValueError(f"{len(differ)} of {len(names)} tensors differ after reload, e.g. {differ[0]}")
    if not all(math.isfinite(float(saved[n].float().sum())) for n in names):
        raise ValueError("the saved weights are not finite")
    return f"{folder.name}: {len(names)} tensors reloaded equal"


def _same(live: torch.Tensor, saved: torch.Tensor) -> bool:
    return torch.allclose(live.detach().cpu().to(saved.dtype), saved, rtol=0, atol=0, equal_nan=True)
