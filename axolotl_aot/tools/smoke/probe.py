"""Listed in a smoke config's ``plugins:`` only: records what the run really did, in a JSON file.

The file (``$AOT_SMOKE_OBSERVATIONS``) is rewritten after every event, so a run that dies
still leaves what it reached. Observations are read back from the live objects: the model's
attention kernel and 4-bit modules, every micro-batch's loss (for finiteness) and every logged
loss (the number the training log shows), the gradients before each optimizer step, the
weights after it, the reference log-probs, the saved checkpoint reloaded.

They belong to the ``SmokeProbe`` instance (axolotl makes one per run), which hands them to what
records into them: a ``TrainerCallback`` for what callbacks see, and two method wrappers on this
run's trainer instance for what they do not (``_instrument``).
"""

from __future__ import annotations

import functools
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

from axolotl_aot.integration import packing

ENV = "AOT_SMOKE_OBSERVATIONS"


class Observations(dict[str, Any]):
    """What one run did, written as JSON to ``path`` on every change (None: kept in memory only)."""

    def __init__(self, path: Path | None) -> None:
        super().__init__(stages=[])
        self.path = path

    @classmethod
    def from_environment(cls) -> Observations:
        """The file ``aot-cli smoke`` names in ``$AOT_SMOKE_OBSERVATIONS``, written by rank 0 only."""
        path = os.environ.get(ENV)
        return cls(Path(path) if path and int(os.environ.get("RANK", "0")) == 0 else None)

    def record(self, key: str, value: Any) -> None:
        self[key] = value
        if self.path is not None:
            self.path.write_text(json.dumps(self, default=str))

    def append(self, key: str, value: Any) -> None:
        """Add ``value`` to the list under ``key`` (one entry per step, micro-batch, log...)."""
        self.record(key, [*self.get(key, []), value])

    def reach(self, stage: str) -> None:
        self.append("stages", stage)


class SmokeProbe(BasePlugin):
    def __init__(self) -> None:
        super().__init__()
        self.observed = Observations.from_environment()

    def register(self, cfg: Any) -> None:
        # axolotl loaded the config with its plugins (``aot-cli smoke`` validated it before the run);
        # not load_datasets: axolotl 0.21 runs the auto-loaded AOTPlugin's, which loads the data, first.
        self.observed.reach("config")

    def pre_model_load(self, cfg: Any) -> None:
        self.observed.reach("data")

    def post_model_load(self, cfg: Any, model: Any) -> None:
        if "model" not in self.observed["stages"]:  # the policy; a separate reference model loads after it
            self.observed.reach("model")

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[TrainerCallback]:
        _observe_model(trainer, self.observed)
        _instrument(trainer, self.observed)
        return [SmokeCallback(trainer, str(cfg.base_model), self.observed)]


def _linear4bit() -> type | None:
    """bitsandbytes' 4-bit linear layer; None without bitsandbytes, whose absence means no 4-bit layer."""
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        return None
    return Linear4bit


def _observe_model(trainer: Any, observed: Observations) -> None:
    model = trainer.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    linear4bit = _linear4bit()
    quantized = [m for m in model.modules() if isinstance(m, linear4bit)] if linear4bit else []
    dataset = trainer.train_dataset
    observed.record(
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
            "padding_free": trainer.aot.aot_padding_free,
            "packing_problem": packing.packing_problem(model),
        },
    )
    observed.record("data", {"rows": len(dataset), "columns": list(dataset.column_names)})
    observed.reach("trainer")


def _instrument(trainer: Any, observed: Observations) -> None:
    """Record the two results no ``TrainerCallback`` receives, by wrapping two methods of this one
    trainer instance (its class is untouched); each wrapper returns the original's result unchanged.

    - ``training_step``: every micro-batch's loss, to find a NaN, which the logged loss hides
      (``logging_nan_inf_filter``). Not the loss to show: the Trainer returns it divided by the
      accumulation steps (it sums them into the logged loss), so it reads ln 2 /
      gradient_accumulation_steps where the log says ln 2; the loss shown is the logged one
      (``SmokeCallback.on_log``).
    - ``compute_ref_log_probs``: the reference log-probs, whose count and finiteness the AOT
      trainers' reference pass returns; a forward hook would see the backbone's hidden states (the
      log-probs are computed from them in chunks), and for LoRA the same module as the policy.
    """
    step, reference = trainer.training_step, trainer.compute_ref_log_probs

    @functools.wraps(step)
    def training_step(*args: Any, **kwargs: Any) -> Any:
        loss = step(*args, **kwargs)
        observed.append("losses", float(loss.detach().float().sum()))
        return loss

    @functools.wraps(reference)
    def compute_ref_log_probs(*args: Any, **kwargs: Any) -> Any:
        result = reference(*args, **kwargs)
        tensors = [t for t in (result if isinstance(result, tuple) else (result,)) if torch.is_tensor(t)]
        seen = observed.get("reference", {"calls": 0, "finite": True, "values": 0})
        seen["calls"] += 1
        seen["values"] += sum(t.numel() for t in tensors)
        seen["finite"] = seen["finite"] and all(bool(torch.isfinite(t).all()) for t in tensors)
        observed.record("reference", seen)
        return result

    trainer.training_step = training_step
    trainer.compute_ref_log_probs = compute_ref_log_probs


class SmokeCallback(TrainerCallback):
    """What callbacks see of each step: gradients, weights, time, memory, logs and the checkpoint."""

    def __init__(self, trainer: Any, base_model: str, observed: Observations) -> None:
        self.trainer = trainer
        self.base_model = base_model
        self.observed = observed
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
        self.observed.append(
            "gradients",
            {
                "with_grad": len(grads),
                "trainable": len(self._trainable()),
                "norm": None if norm is None else float(norm),
            },
        )
        self.before = {n: p.detach().clone() for n, p in self._trainable().items()}

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        after = self._trainable()
        changed = sum(not torch.equal(self.before[n], after[n].detach()) for n in self.before)
        self.observed.append("changed", changed)
        finite = all(bool(torch.isfinite(p).all()) for p in after.values())
        self.observed.append("weights_finite", finite)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.cuda.is_available():
            peak, device = torch.cuda.max_memory_allocated(), "CUDA allocated"
        else:
            peak, device = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process RSS"
        self.observed.append("step_seconds", time.perf_counter() - self.started)
        self.observed.record("peak_memory", {"bytes": peak, "measure": device})

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if logs and "aot/sort_size" in logs:
            self.observed.append("sort_sizes", logs["aot/sort_size"])
        if logs and "loss" in logs:  # the training loss, as the log and trainer_state.json show it
            self.observed.append("logged_losses", float(logs["loss"]))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            try:
                detail = _reload_matches(self.trainer.model, folder, self.base_model)
                self.observed.record("checkpoint", {"ok": True, "detail": detail})
            except Exception as err:  # any failure to reload is the finding
                self.observed.record(
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
