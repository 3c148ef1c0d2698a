"""Training memory of one FSDP2 rank: ``rl: aot`` (chunked log-probs, the sharded head gathered)
against axolotl's ``rl: dpo`` + ``dpo_loss_type: [aot]`` (TRL's AOT on the full logits), same batches.

    cd benchmarks && ../.venv/bin/python sharded_memory.py [--vocab 128256] [--seq 256] [--pairs 4]

Both run through ``torchrun --nproc_per_node 2 -m axolotl.cli.train`` on two CPU ranks over gloo,
with the test harness (``tests/harness``: what lets accelerate and axolotl start FSDP2 without a
GPU, and the probe that records, per rank, that the model is sharded and the peak resident set
during training above the set when training began). The model is a Llama of --hidden-size x
--layers with a --vocab vocabulary, float32; every sequence is --seq digit tokens, half prompt.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from common import ROOT
from logit_memory import build_model, rows

sys.path.insert(0, str(ROOT / "tests/harness"))
from cpu_engines import PROBE, engine_records, environment, fsdp2

VARIANTS = {
    "ours": {"rl": "aot", "plugins": ["axolotl_aot.AOTPlugin", PROBE]},
    "trl": {"rl": "dpo", "dpo_loss_type": ["aot"], "plugins": [PROBE]},
}


def config(folder: Path, name: str, model: Path, data: Path, options: argparse.Namespace) -> Path:
    cfg = {
        **VARIANTS[name],
        **fsdp2(),
        "base_model": str(model),
        "rl_beta": 0.1,
        "datasets": [{"path": str(data), "ds_type": "json", "split": "train", "type": "chatml.prompt_pairs"}],
        "dataset_prepared_path": str(folder / f"prepared-{name}"),
        "output_dir": str(folder / name),
        "sequence_len": options.seq + 16,
        "micro_batch_size": options.pairs,
        "gradient_accumulation_steps": 1,
        "max_steps": options.steps,
        "learning_rate": 1e-4,
        "optimizer": "adamw_torch",
        "lr_scheduler": "constant",
        "logging_steps": 1,
        "save_strategy": "no",
        "seed": 0,
        **dict.fromkeys(("bf16", "fp16", "tf32"), False),
        "attn_implementation": "sdpa",
    }
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(config: Path) -> list[dict]:
    """Both ranks' probe records of one torchrun launch (after checking the run and its sharding)."""
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--nproc_per_node", "2", "-m", "axolotl.cli.train", str(config)]
    # ACCELERATE_USE_CPU: multi-CPU ranks for the plain axolotl config (the plugin does it for its own)
    done = subprocess.run(command, capture_output=True, text=True, env=environment(ACCELERATE_USE_CPU="1"))
    if done.returncode:
        raise SystemExit(f"{config.name} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    ranks = engine_records(Path(yaml.safe_load(config.read_text())["output_dir"]))
    assert len(ranks) == 2 and all(rank["lm_head_type"] == "DTensor" for rank in ranks), ranks
    losses = [line for line in (done.stdout + done.stderr).splitlines() if "'loss': " in line]
    first = losses[0].split("'loss': ")[1].split(",")[0].strip("'")
    return [{**rank, "first_loss": first} for rank in ranks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=128_256)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=4, help="pairs per rank's micro-batch")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = build_model(folder, options.vocab, options.hidden_size, options.layers, seed=0)
        data = folder / "pairs.jsonl"
        with data.open("w") as file:
            for row in rows(options.seq, 2 * options.pairs * options.steps):
                file.write(json.dumps(row) + "\n")
        results = {name: train(config(folder, name, model, data, options)) for name in VARIANTS}
    print(
        f"FSDP2, 2 CPU ranks; vocab {options.vocab}, {options.pairs} pairs x {options.seq} tokens per rank, "
        f"hidden {options.hidden_size} x {options.layers} layers, float32, {options.steps} AdamW steps"
    )
    print("| variant | first logged loss | training peak, rank 0 / rank 1 (MiB) |")
    print("|---|---|---|")
    for name, ranks in results.items():
        peaks = " / ".join(f"{rank['training_peak_mib']:.0f}" for rank in ranks)
        print(f"| {name} | {ranks[0]['first_loss']} | {peaks} |")
    ours, trl = (max(rank["training_peak_mib"] for rank in results[name]) for name in ("ours", "trl"))
    print(f"ratio ours / TRL (the larger rank of each): {ours / trl:.3f}")


if __name__ == "__main__":
    main()
