"""Rewrite the user's config into a smoke config: same settings, a tiny model, the first data rows.

What a CPU cannot run (flash-attention, bf16/fp16, tf32, Cut Cross Entropy and Liger kernels,
DeepSpeed, FSDP) is switched to its CPU equivalent and reported as "not run here"; everything else
is kept as the user wrote it. The settings audit reads the user's own config, so that a refusal is
the real run's, not one of the CPU switches'. The training run imports axolotl, in its own process.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from axolotl_aot.integration.modes import Mode, of_config
from axolotl_aot.integration.records import is_local, iter_records
from axolotl_aot.integration.settings import cut_cross_entropy_on, setting_problems
from axolotl_aot.tools.config import requested_attention
from axolotl_aot.tools.smoke.rows import Row, failed, not_run, ok
from axolotl_aot.tools.synthetic import DATA_DIR
from axolotl_aot.tools.tiny_model import build_tiny_model, build_tokenizer, seeded

PROBE = "axolotl_aot.tools.smoke.probe.SmokeProbe"
CPU_RANKS = 2  # a multi-process config on a CPU: plain data parallelism over gloo, its engine dropped
FLASH = {"flash_attention_2", "flash_attention_3", "flash_attention", "kernels-community/flash-attn"}
# Keys of a real run that a smoke run must not act on: evaluation, uploads, resuming, warmup
# (replaced by warmup_steps: 0: a warmup would leave the first steps at learning rate 0).
DROPPED = (
    "test_datasets",
    "eval_steps",
    "evals_per_epoch",
    "saves_per_epoch",
    "save_total_limit",
    "eval_table_size",
    "do_bench_eval",
    "early_stopping_patience",
    "load_best_model_at_end",
    "hub_model_id",
    "push_to_hub",
    "hub_strategy",
    "resume_from_checkpoint",
    "auto_resume_from_checkpoints",
    "warmup_steps",
    "warmup_ratio",
    "base_model_config",
    "wandb_project",
    "wandb_entity",
    "wandb_name",
    "wandb_watch",
    "wandb_log_model",
)
# The Liger plugin's kernels (axolotl 0.19, 0.21): Triton, so CUDA only.
LIGER_KERNELS = (
    "liger_rope",
    "liger_rms_norm",
    "liger_rms_norm_gated",
    "liger_layer_norm",
    "liger_swiglu",
    "liger_glu_activation",
    "liger_cross_entropy",
    "liger_fused_linear_cross_entropy",
    "liger_use_token_scaling",
)
TINY = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}


@dataclass
class Plan:
    """The smoke config written to ``workdir`` and what the run is expected to show."""

    workdir: Path
    config: Path
    mode: Mode
    attention: str  # what the model must report: the YAML's kernel, or sdpa when it cannot run here
    requested_attention: str  # the YAML's kernel
    load_in_4bit: bool
    cuda: bool
    processes: int
    rows: list[Row] = field(default_factory=list)  # decided before the run
    skipped: list[Row] = field(default_factory=list)  # GPU-only settings, reported after the run

    @property
    def failed(self) -> bool:
        return any(row.failed for row in self.rows)


def prepare(config: Path, workdir: Path, *, steps: int, cuda: bool, gpus: int) -> Plan:
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    mode = of_config(raw) if isinstance(raw, dict) else None
    if mode is None:
        raise ValueError(
            f"{config}: not an AOT config (rl must be aot or aot_unpaired); check it with aot-cli validate"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = {k: v for k, v in raw.items() if k not in DROPPED}
    multi = bool(cfg.get("deepspeed") or cfg.get("fsdp") or cfg.get("fsdp_config"))
    processes = (max(gpus, 1) if cuda else CPU_RANKS) if multi else 1
    plan = Plan(
        workdir, workdir / "smoke.yml", mode, "sdpa", "sdpa", bool(cfg.get("load_in_4bit")), cuda, processes
    )
    plan.rows.append(_settings(raw, mode))
    plan.rows += _distributed(cfg, config, plan)
    plan.rows += _model(cfg, workdir / "model")
    plan.rows += _data(cfg, mode, config, workdir / "data", steps * processes)
    _machine(cfg, plan)
    cfg["plugins"] = [*(cfg.get("plugins") or []), PROBE]
    cfg.update(
        max_steps=steps,
        warmup_steps=0,
        save_steps=steps,
        save_strategy="steps",
        logging_steps=1,
        eval_strategy="no",
        val_set_size=0,
        output_dir=str(workdir / "out"),
        dataset_prepared_path=str(workdir / "prepared"),
    )
    plan.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return plan


def _settings(raw: dict[str, Any], mode: Mode) -> Row:
    """The settings audit of the user's config (``aot-cli validate`` lists every key): its first refusal."""
    problems = setting_problems(raw, mode)
    refused = [p.message for p in problems if p.kind == "refused"]
    if refused:
        more = f" (and {len(refused) - 1} more: aot-cli validate lists them)" if len(refused) > 1 else ""
        return failed("settings", refused[0] + more)
    warned = sorted({p.key for p in problems})
    return ok("settings", f"no effect, warned: {', '.join(warned)}" if warned else "none refused or warned")


def _model(cfg: dict[str, Any], out: Path) -> list[Row]:
    """A tiny random model of the base model's family, with its tokenizer when it is on this machine."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    base = str(cfg.get("base_model"))
    rows = []
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(cfg.get("tokenizer_config") or base), local_files_only=True
        )
        rows.append(ok("tokenizer", f"{base}'s own ({len(tokenizer)} tokens)"))
    except (OSError, ValueError):
        tokenizer = None
        rows.append(not_run("tokenizer", f"{base}'s is not on this machine: the bundled tiny one stands in"))
    try:  # a local folder, the local hub cache, or the config file alone from the hub when online
        config = AutoConfig.from_pretrained(base, local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1")
    except (OSError, ValueError):
        build_tiny_model(out)
        if tokenizer is not None:
            tokenizer.save_pretrained(out)  # its ids may exceed the tiny vocabulary: resized by axolotl
        for key in ("model_type", "tokenizer_type", "model_config_type", "tokenizer_config"):
            cfg.pop(key, None)
        cfg["base_model"] = str(out)
        why = f"{base}'s config.json is not on this machine"
        return [
            *rows,
            not_run("model family", f"{why}: a tiny Llama stands in, {base}'s architecture untested"),
        ]
    _shrink(config)
    if tokenizer is None:
        tokenizer = build_tokenizer()
        config.vocab_size = len(tokenizer)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            setattr(config, name, getattr(tokenizer, name))
    with seeded():  # the same stand-in weights, so the same losses, in every smoke
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    cfg["base_model"] = str(out)
    cfg.pop("tokenizer_config", None)
    layers = config.num_hidden_layers
    return [
        *rows,
        ok(
            "model family",
            f"tiny {(config.architectures or [config.model_type])[0]} from {base}'s config.json "
            f"({layers} layers, width {config.hidden_size})",
        ),
    ]


def _shrink(config: Any) -> None:
    """Few layers, small width; per-layer lists cut to the new depth; heads keep the GQA ratio."""
    layers = config.num_hidden_layers
    kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    ratio = max(1, config.num_attention_heads // kv)
    for key, value in TINY.items():
        setattr(config, key, min(value, getattr(config, key, value) or value))
    config.num_key_value_heads = max(1, config.num_attention_heads // ratio)
    if hasattr(config, "head_dim"):
        config.head_dim = config.hidden_size // config.num_attention_heads
    for key, value in vars(config).copy().items():
        if isinstance(value, list) and len(value) == layers:
            setattr(config, key, value[: config.num_hidden_layers])
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a pre-quantized checkpoint's settings do not apply to random weights
    config.architectures = config.architectures[:1] if config.architectures else None


def _count(value: Any) -> int:
    """A batch-size key as a count of rows to copy: 1 when it is no positive integer, which the
    run's config validation then reports with its own reason (``config`` row)."""
    try:
        return max(1, int(value or 1))
    except (TypeError, ValueError):
        return 1


def _data(cfg: dict[str, Any], mode: Mode, config: Path, out: Path, steps: int) -> list[Row]:
    """Each dataset's first rows in a local JSONL; the bundled set when the data is not reachable."""
    out.mkdir(parents=True, exist_ok=True)
    count = 2 * steps * _count(cfg.get("micro_batch_size")) * _count(cfg.get("gradient_accumulation_steps"))
    rows, datasets = [], []
    for index, dataset in enumerate(cfg.get("datasets") or []):
        source = str(dataset.get("path"))
        path = Path(source) if Path(source).exists() else config.parent / source
        try:
            head = list(
                itertools.islice(
                    iter_records(path if is_local(source) else source, dataset.get("split")), count
                )
            )
        except (OSError, ValueError) as err:
            if is_local(source):
                rows.append(failed(f"datasets[{index}]", f"{_first_line(err)}: fix the path"))
                continue
            bundled = DATA_DIR / f"parity_{mode.name}_train.jsonl"
            datasets.append(
                {"path": str(bundled), "ds_type": "json", "split": "train", "type": "chatml.prompt_pairs"}
            )
            rows.append(
                not_run(
                    f"datasets[{index}]",
                    f"{source} is not reachable ({_first_line(err)}): the bundled "
                    f"{bundled.name} (type chatml.prompt_pairs) stands in; "
                    f"type {dataset.get('type')} untested",
                )
            )
            continue
        target = out / f"{index}.jsonl"
        target.write_text(
            "".join(
                (r.raw or "") + "\n" if r.row is None else json.dumps(r.row, default=str) + "\n" for r in head
            )
        )
        keep = {k: v for k, v in dataset.items() if k not in ("data_files", "name", "revision", "shards")}
        datasets.append({**keep, "path": str(target), "ds_type": "json", "split": "train"})
        rows.append(
            ok(f"datasets[{index}]", f"first {len(head)} rows of {source}, type {dataset.get('type')}")
        )
    cfg["datasets"] = datasets
    return rows


def _distributed(cfg: dict[str, Any], config: Path, plan: Plan) -> list[Row]:
    """DeepSpeed JSON parsed and checked before anything starts; the engines launched only where GPUs
    are (a CPU runs the config as ``CPU_RANKS`` plain data-parallel ranks)."""
    rows = []
    deepspeed = cfg.get("deepspeed")
    if deepspeed:
        path = Path(deepspeed) if Path(deepspeed).exists() else config.parent / deepspeed
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(settings, dict):
                raise ValueError(f"expected a JSON object, got {type(settings).__name__}")
            stage = (settings.get("zero_optimization") or {}).get("stage", 0)
            if stage not in (0, 1, 2, 3):
                raise ValueError(f"zero_optimization.stage is {stage!r}, not 0-3")
            rows.append(ok("deepspeed config", f"{deepspeed}: ZeRO stage {stage}"))
            cfg["deepspeed"] = str(path.resolve())
        except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
            rows.append(
                failed(
                    "deepspeed config",
                    f"{deepspeed}: {_first_line(err)}: fix the file (it must be valid JSON)",
                )
            )
    if (cfg.get("fsdp") or cfg.get("fsdp_config")) and not isinstance(cfg.get("fsdp_config") or {}, dict):
        rows.append(failed("fsdp config", "fsdp_config must be a mapping of FSDP settings"))
    if not plan.cuda:
        for launcher, keys in (
            ("deepspeed", ("deepspeed",)),
            ("fsdp", ("fsdp", "fsdp_config", "fsdp_version")),
        ):
            if any([cfg.pop(key) for key in keys if key in cfg]):  # a list: pop every key
                plan.skipped.append(
                    not_run(
                        f"{launcher} launch",
                        f"needs CUDA GPUs: ran as {plan.processes} CPU ranks of plain data parallelism "
                        f"(gloo) instead, without {launcher}'s sharding",
                    )
                )
    return rows


def _machine(cfg: dict[str, Any], plan: Plan) -> None:
    """On a CPU, flash-attention and mixed precision become sdpa and float32, reported as not run."""
    requested = requested_attention(cfg)
    plan.attention = plan.requested_attention = requested
    if plan.cuda:
        return
    if requested in FLASH or cfg.get("flash_attention"):
        plan.skipped.append(
            not_run("attention kernel requested", f"{requested} needs CUDA: the CPU run used sdpa")
        )
        cfg.pop("flash_attention", None)
        cfg["attn_implementation"] = plan.attention = "sdpa"
    precision = [key for key in ("bf16", "fp16", "tf32") if cfg.get(key) not in (None, False)]
    if precision:
        plan.skipped.append(
            not_run(
                "mixed precision",
                f"{', '.join(f'{k}: {cfg[k]}' for k in precision)} needs a "
                "GPU: the CPU run computed in float32",
            )
        )
    cfg.update(bf16=False, fp16=False, tf32=False)
    kernels = [key for key in LIGER_KERNELS if cfg.get(key)]
    if cut_cross_entropy_on(cfg):
        kernels.append("cut_cross_entropy")
    if kernels:
        plan.skipped.append(
            not_run(
                "loss and layer kernels",
                f"{', '.join(kernels)} need CUDA (Triton): the CPU run used the model's own layers",
            )
        )
        cfg.update(dict.fromkeys(kernels, False))


def _first_line(err: BaseException) -> str:
    return (str(err) or type(err).__name__).strip().splitlines()[0]
