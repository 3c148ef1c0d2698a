"""Memory and step time of the AOT trainers' chunked log-probs against TRL's full-logits AOT.

    .venv/bin/python benchmarks/logit_memory.py [--vocab 32000 128256 151936] [--seq 256 1024]

For each vocabulary and sequence length, ``rl: aot`` (ours: completion log-probs through the LM
head in chunks) and axolotl's ``rl: dpo`` + ``dpo_loss_type: [aot]`` (TRL's AOT on the model's
[batch, tokens, vocab] logits) train on the same batches (same rows, seed and sampler), each in its
own spawned child: a Llama of --hidden-size x --layers with the given vocabulary, float32, a policy
and a reference model. Every sequence is --seq tokens (digits, one token each), half prompt.

Memory on a CPU: the child's peak RSS during training above its RSS just before training (Linux
VmHWM, reset through /proc/self/clear_refs), i.e. what training itself needs; the whole-process
peak is printed too. On a GPU: torch.cuda.max_memory_allocated over training.

Then, at --search-vocab and --search-seq, the largest micro-batch (doubling from 1 pair up to
--search-max) whose training memory stays within --budget-gib, for each trainer.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import run_in_child, timed_training

HALF_PROMPT = 2  # a sequence is 1/HALF_PROMPT prompt tokens, the rest completion


def build_model(folder: Path, vocab: int, hidden_size: int, layers: int, seed: int) -> Path:
    from axolotl_aot.tools.tiny_model import build_tiny_model

    path = folder / f"model-{vocab}-{hidden_size}x{layers}-{seed}"
    if not (path / "config.json").exists():
        build_tiny_model(path, seed=seed, hidden_size=hidden_size, layers=layers, vocab_size=vocab)
    return path


def rows(seq: int, count: int) -> Any:
    """``count`` pairs whose prompt + completion (with the end-of-turn token) is ``seq`` tokens."""
    from datasets import Dataset

    generator = random.Random(0)
    prompt, completion = seq // HALF_PROMPT, seq - seq // HALF_PROMPT - 1

    def digits(n: int) -> str:
        return "".join(generator.choice("0123456789") for _ in range(n))

    return Dataset.from_list(
        [
            {"prompt": digits(prompt), "chosen": digits(completion), "rejected": digits(completion)}
            for _ in range(count)
        ]
    )


def training_memory() -> tuple[Any, Any]:
    """(start, stop) callables measuring the peak memory of what runs between them, in MiB."""
    import torch

    if torch.cuda.is_available():

        def start() -> float:
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated() / 2**20

        return start, lambda: torch.cuda.max_memory_allocated() / 2**20

    def status(key: str) -> float:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
        return int(line.split()[1]) / 1024

    def start() -> float:
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        return status("VmRSS:")

    return start, lambda: status("VmHWM:")


@dataclass(frozen=True)
class Run:
    """One child's training: ``name`` is aot (ours) or trl-aot; ``chunk`` None = ours' default."""

    name: str
    seq: int
    pairs: int
    steps: int
    warmup: int
    chunk: int | None = None


def variant(run: Run, models: tuple[Path, Path], output: Path) -> dict[str, Any]:
    """Train ``run``; its median step time, training memory and first loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_aot.integration import compat
    from axolotl_aot.integration.args import AOTArgs
    from axolotl_aot.integration.factory import build_trainer
    from axolotl_aot.integration.modes import PAIRED

    cuda = torch.cuda.is_available()
    args = {
        "output_dir": str(output),
        "report_to": [],
        "use_cpu": not cuda,
        "bf16": False,
        "beta": 0.1,
        "max_length": run.seq + 8,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "save_strategy": "no",
        "seed": 0,
        "remove_unused_columns": False,
        "per_device_train_batch_size": run.pairs,
        "max_steps": run.steps,
    }
    policy, reference = (AutoModelForCausalLM.from_pretrained(m, dtype=torch.float32) for m in models)
    data = {
        "train_dataset": rows(run.seq, run.pairs * run.steps),
        "processing_class": AutoTokenizer.from_pretrained(models[0]),
    }
    if run.name == "aot":
        chunk = {} if run.chunk is None else {"aot_logits_chunk_size": run.chunk}
        trainer = build_trainer(PAIRED, policy, reference, args=args, settings=AOTArgs(**chunk), **data)
    else:
        dpo_config, _ = compat.rl_training_args()
        trainer = compat.dpo_trainer()(policy, reference, args=dpo_config(**args, loss_type=["aot"]), **data)
    start, stop = training_memory()
    before = start()
    result = timed_training(trainer, run.warmup)
    result["training_mib"] = stop() - before
    result["loss"] = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    result["process_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def compare(folder: Path, options: argparse.Namespace, vocab: int, seq: int) -> None:
    models = tuple(build_model(folder, vocab, options.hidden_size, options.layers, s) for s in (0, 1))
    pairs = max(1, options.tokens // (2 * seq))
    ours, trl = (
        run_in_child(
            variant,
            Run(name, seq, pairs, options.steps, options.warmup, options.chunk),
            models,
            folder / name,
        )
        for name in ("aot", "trl-aot")
    )
    print(
        f"| {vocab:,} | {seq} | {pairs} | {ours['training_mib']:,.0f} | {trl['training_mib']:,.0f} "
        f"| **{ours['training_mib'] / trl['training_mib']:.3f}** | {ours['process_mib']:,.0f} / "
        f"{trl['process_mib']:,.0f} | {ours['step_seconds']:.3f} | {trl['step_seconds']:.3f} "
        f"| **{ours['step_seconds'] / trl['step_seconds']:.3f}** | {ours['loss']:.6f} / {trl['loss']:.6f} |",
        flush=True,
    )


def largest_micro_batch(folder: Path, options: argparse.Namespace, name: str) -> tuple[int, list[str]]:
    """The largest doubling micro-batch (pairs) of ``name`` within the budget, and what each probe took."""
    vocab, seq = options.search_vocab, options.search_seq
    models = tuple(build_model(folder, vocab, options.hidden_size, options.layers, s) for s in (0, 1))
    fits, probes, pairs = 0, [], 1
    while pairs <= options.search_max:
        probe = Run(name, seq, pairs, steps=2, warmup=0, chunk=options.chunk)
        mib = run_in_child(variant, probe, models, folder / f"{name}-{pairs}")["training_mib"]
        probes.append(f"{pairs}: {mib:,.0f}")
        if mib > options.budget_gib * 1024:
            break
        fits, pairs = pairs, pairs * 2
    return fits, probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[32_000, 128_256, 151_936])
    parser.add_argument("--seq", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--tokens", type=int, default=2048, help="tokens per micro-batch (pairs x 2 x seq)")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--budget-gib", type=float, default=2.0)
    parser.add_argument("--search-vocab", type=int, default=128_256)
    parser.add_argument("--search-seq", type=int, default=256)
    parser.add_argument("--search-max", type=int, default=32, help="largest micro-batch (pairs) to try")
    parser.add_argument("--chunk", type=int, help="aot_logits_chunk_size (default: the key's default)")
    parser.add_argument("--no-search", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        print("| vocab | seq | pairs | ours MiB | TRL MiB | memory ratio | process peak MiB (ours / TRL) "
              "| ours s/step | TRL s/step | time ratio | first loss (ours / TRL) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for vocab in options.vocab:
            for seq in options.seq:
                compare(folder, options, vocab, seq)
        if not options.no_search:
            (ours, ours_probes), (trl, trl_probes) = (
                largest_micro_batch(folder, options, name) for name in ("aot", "trl-aot")
            )
            print(
                f"\nLargest micro-batch within {options.budget_gib} GiB of training memory "
                f"(vocab {options.search_vocab:,}, seq {options.search_seq}): ours {ours} pairs "
                f"[{'; '.join(ours_probes)} MiB], TRL {trl} pairs [{'; '.join(trl_probes)} MiB]: "
                f"{ours / max(trl, 1):.1f}x"
            )


if __name__ == "__main__":
    main()
