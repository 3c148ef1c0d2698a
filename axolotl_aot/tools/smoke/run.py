"""Launch the smoke config as the real run would and turn its observations into rows."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from axolotl_aot.tools.smoke.environment import environment_rows
from axolotl_aot.tools.smoke.prepare import FLASH, Plan, prepare
from axolotl_aot.tools.smoke.probe import ENV
from axolotl_aot.tools.smoke.rows import Row, failed, not_run, ok

ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception)\b.*")
VALIDATION = re.compile(r"^(?:[\w.]+\.)?ValidationError: \d+ validation errors? for ")
# A pydantic error's reason, after the field's line for a field's error: "Value error, <the validator's
# message> [type=value_error, input_value=...]".
REASON = re.compile(r"^(?:\w+ error, )?(.+?) \[type=\w+")
FIELD = re.compile(r"[\w.\[\]-]+")  # a field's line: "weight_decay", "datasets.0.type"
CONFIG_INVALID = re.compile(r"ValidationError: \d+ validation errors? for Axolotl\w*Config")
MAX_ERROR = 800  # characters of an error shown in a row
# Known causes: a pattern of the error's text and the fix to print with it.
FIXES = (
    (
        r"KeyError|has no column|Column .* not in",
        "the dataset's columns do not fit its type: check them with "
        "aot-cli validate, or convert the data with aot-cli convert-dataset",
    ),
    (
        r"flash_attn|FlashAttention",
        'install flash-attn built for this torch and CUDA: pip install "axolotl-aot[flash-attn]"',
    ),
    (
        r"out of memory|OutOfMemoryError",
        "lower micro_batch_size or sequence_len, or set gradient_checkpointing: true",
    ),
    (r"bitsandbytes", "reinstall bitsandbytes for this CUDA: pip install -U bitsandbytes"),
)
# The rows a run produces, each with the stage the run must have reached to produce it.
STAGES = {"config": "config", "data formatting": "data", "model build": "model", "training": "trainer"}


def run_smoke(config: str | Path, *, steps: int = 2, workdir: Path | None = None) -> list[Row]:
    """Every capability row of ``config`` run for ``steps`` optimizer steps on this machine."""
    import torch

    config = Path(config)
    cuda, gpus = torch.cuda.is_available(), torch.cuda.device_count()
    with tempfile.TemporaryDirectory(prefix="aot-smoke-") as tmp:
        work = workdir or Path(tmp)
        plan = prepare(config, work, steps=steps, cuda=cuda, gpus=gpus)
        rows = environment_rows(
            needs_flash=plan.requested_attention in FLASH,
            needs_deepspeed=any(r.name.startswith("deepspeed") for r in plan.rows + plan.skipped),
        )
        rows += plan.rows
        if plan.failed:
            return [*rows, not_run("training", "not started: a row above failed")]
        observed, done = _launch(plan)
        return rows + _rows(plan, observed, done) + plan.skipped


def _launch(plan: Plan) -> tuple[dict[str, Any], subprocess.CompletedProcess]:
    entry = ["-m", "axolotl.cli.train", str(plan.config)]
    launchers = Path(sys.executable).parent
    if plan.processes > 1 and plan.cuda:
        command = [str(launchers / "accelerate"), "launch", "--num_processes", str(plan.processes), *entry]
    elif plan.processes > 1:  # CPU ranks: torchrun, which the plugin turns into gloo data parallelism
        command = [str(launchers / "torchrun"), "--nproc_per_node", str(plan.processes), *entry]
    else:
        command = [sys.executable, *entry]
    path = plan.workdir / "observations.json"
    path.unlink(missing_ok=True)  # a kept folder's earlier run must not answer for this one
    env = {**os.environ, ENV: str(path), "AXOLOTL_DO_NOT_TRACK": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    (plan.workdir / "train.log").write_text(done.stdout + done.stderr)
    observed = json.loads(path.read_text()) if path.exists() else {"stages": []}
    return observed, done


def _error(done: subprocess.CompletedProcess) -> str:
    """The run's error with the fix when the cause is known: the plugin's own refusal
    (``axolotl-aot: ...``), else the reasons inside a pydantic ``ValidationError`` (whose last line
    names only the config class), else the last exception line of its output."""
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("axolotl-aot: ")]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    message = (ours or errors or lines or [f"exit code {done.returncode}"])[-1]
    if not ours and VALIDATION.match(message):
        detail = lines[lines.index(message) + 1 :]
        reasons = [
            (f"{detail[i - 1]}: " if i and FIELD.fullmatch(detail[i - 1]) else "") + match.group(1)
            for i, line in enumerate(detail)
            if (match := REASON.match(line))
        ]
        message = "; ".join(reasons) or message
    message = message[:MAX_ERROR]
    fix = next((fix for pattern, fix in FIXES if re.search(pattern, message)), None)
    return f"{message}: {fix}" if fix else message


def _rows(plan: Plan, obs: dict[str, Any], done: subprocess.CompletedProcess) -> list[Row]:
    reached = obs["stages"]
    if CONFIG_INVALID.search(done.stdout + done.stderr):  # the plugins register before the validation
        reached = []
    rows = []
    for name, stage in STAGES.items():
        if stage in reached:
            continue
        rows.append(failed(name, _error(done)))
        return rows if name == "training" else [*rows, not_run("training", f"not reached: {name} failed")]
    model = obs["model"]
    rows += [
        ok("data formatting", f"{obs['data']['rows']} rows, columns {', '.join(obs['data']['columns'])}"),
        ok(
            "model build",
            f"{model['class']}, {model['parameters']:,} parameters ({model['trainable']:,} trainable)",
        ),
    ]
    rows.append(_reference(obs, model))
    if model["attention"] == plan.attention:
        rows.append(ok("attention kernel", f"{model['attention']} (read back from the model)"))
    else:
        rows.append(
            failed(
                "attention kernel",
                f"the config asks for {plan.attention}, the model runs {model['attention']}",
            )
        )
    rows.append(_quantization(plan, model))
    rows.append(_padding_free(model))
    rows.append(ok("precision", f"weights in {model['dtype']}"))
    rows.append(ok("gradient checkpointing", "on" if model["gradient_checkpointing"] else "off"))
    rows += _training(obs, done)
    rows.append(_gather(obs, model))
    if obs.get("step_seconds"):
        memory = obs["peak_memory"]
        seconds = sorted(obs["step_seconds"])[len(obs["step_seconds"]) // 2]
        rows.append(
            ok(
                "peak memory and step time",
                f"{memory['bytes'] / 2**30:.2f} GiB peak {memory['measure']}, "
                f"{seconds:.2f} s per step (median of {len(obs['step_seconds'])}, tiny model)",
            )
        )
    if done.returncode != 0 and not any(row.failed for row in rows):
        rows.append(failed("training", _error(done)))
    return rows


def _reference(obs: dict[str, Any], model: dict[str, Any]) -> Row:
    reference = obs.get("reference")
    if not reference:
        return failed("reference pass", "no reference log-probs were computed")
    source = (
        "a separate reference model"
        if model["reference_model"]
        else "the adapter-disabled policy"
        if model["peft"]
        else "the policy"
    )
    if not reference["finite"]:
        return failed("reference pass", f"non-finite reference log-probs from {source}")
    return ok(
        "reference pass",
        f"{reference['values']} finite log-probs in {reference['calls']} passes, from {source}",
    )


def _padding_free(model: dict[str, Any]) -> Row:
    """Whether the trainers pack this model's micro-batches (``aot_padding_free``), and otherwise why not."""
    if not model["padding_free"]:
        return ok("padding-free batches", "off (aot_padding_free: false): padded, as TRL pads")
    if model["packing_problem"]:
        return ok("padding-free batches", f"padded: {model['packing_problem']}")
    return ok("padding-free batches", f"packed ({model['attention']} separates the sequences of a row)")


def _quantization(plan: Plan, model: dict[str, Any]) -> Row:
    found, real = model["linear4bit"], model["quantized4bit"]
    if not plan.load_in_4bit:
        return (
            ok("4-bit layers", "none requested")
            if not found
            else failed("4-bit layers", f"{found} unexpected")
        )
    if found and real == found:
        backend = "CUDA" if plan.cuda else "CPU"
        return ok("4-bit layers", f"{found} bitsandbytes Linear4bit layers quantized ({backend} backend)")
    return failed("4-bit layers", f"load_in_4bit: true but {real} of {found} Linear4bit layers are quantized")


def _training(obs: dict[str, Any], done: subprocess.CompletedProcess) -> list[Row]:
    losses, grads, changed = obs.get("losses", []), obs.get("gradients", []), obs.get("changed", [])
    fix = "lower learning_rate (or set max_grad_norm)"
    rows = []
    bad = [i + 1 for i, loss in enumerate(losses) if not math.isfinite(loss)]
    if not losses:
        rows.append(failed("loss finite", f"no training step ran: {_error(done)}"))
    elif bad:
        rows.append(failed("loss finite", f"non-finite loss at micro-batch {bad[0]} of {len(losses)}: {fix}"))
    else:
        logged = obs.get("logged_losses", [])  # per optimizer step, as the training log shows them
        last = f"last logged loss {logged[-1]:.4g}" if logged else "no loss logged"
        rows.append(ok("loss finite", f"{len(losses)} micro-batches, {last}"))
    norms = [g["norm"] for g in grads]
    if not grads:
        rows.append(failed("gradients finite and non-zero", "no optimizer step was reached"))
    elif any(n is None or not math.isfinite(n) for n in norms):
        rows.append(failed("gradients finite and non-zero", f"non-finite gradient norm {norms}: {fix}"))
    elif any(n == 0 or g["with_grad"] == 0 for n, g in zip(norms, grads, strict=True)):
        rows.append(
            failed("gradients finite and non-zero", f"zero gradients (norms {norms}): nothing would learn")
        )
    else:
        rows.append(
            ok(
                "gradients finite and non-zero",
                f"norms {', '.join(f'{n:.3g}' for n in norms)}; "
                f"{grads[-1]['with_grad']} of {grads[-1]['trainable']} trainable tensors",
            )
        )
    if not all(obs.get("weights_finite", [True])):
        rows.append(failed("optimizer step", f"the weights are not finite after the step: {fix}"))
    elif changed and all(changed):
        rows.append(ok("optimizer step", f"{len(changed)} steps, {changed[-1]} tensors changed in the last"))
    else:
        rows.append(failed("optimizer step", f"tensors changed per step: {changed or 'no step ran'}"))
    checkpoint = obs.get("checkpoint")
    if checkpoint is None:
        rows.append(failed("checkpoint save and reload", "no checkpoint was saved"))
    else:
        rows.append((ok if checkpoint["ok"] else failed)("checkpoint save and reload", checkpoint["detail"]))
    return rows


def _gather(obs: dict[str, Any], model: dict[str, Any]) -> Row:
    ranks, sizes = model["world_size"], obs.get("sort_sizes", [])
    if ranks == 1:
        return not_run(
            "cross-rank gather", "one process here: a multi-GPU run gathers every rank's micro-batch"
        )
    expected = ranks * model["micro_batch_size"]
    if sizes and all(size >= expected for size in sizes):
        return ok("cross-rank gather", f"sort size {sizes[-1]:g} over {ranks} ranks")
    return failed("cross-rank gather", f"sort sizes {sizes}, expected {expected} over {ranks} ranks")
