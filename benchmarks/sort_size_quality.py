"""Held-out dominance after a fixed budget of samples, for sort sizes 2, 8 and 32.

    .venv/bin/python benchmarks/sort_size_quality.py --budget 960

On the bundled parity task with the tiny model, each run sees the same number of training
pairs. local scope grows the micro-batch (the sort size is the micro-batch); step scope keeps
micro-batch 2 and grows gradient accumulation (the sort size is the whole step, at the
memory of a micro-batch of 2). Both take budget / sort size optimizer steps. Reported:
held-out violation fraction, win rate and pair accuracy of the rewards, and peak RSS.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import build_models, dataset, run_in_child, trainer

SORT_SIZES = (2, 8, 32)


def train_and_score(
    models: tuple[Path, Path], output: Path, scope: str, batch: int, accumulation: int, steps: int
) -> dict:
    from axolotl_aot.integration.compat import dict_default
    from axolotl_aot.tools import report

    built = trainer(
        "aot",
        models,
        output,
        scope=scope,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        max_steps=steps,
        logging_steps=50,
    )
    built.train()
    cfg = dict_default({"aot_mode": "paired", "rl_beta": 0.1, "sequence_len": 64})
    scores = report.score(
        built.model,
        built.ref_model,
        built.processing_class,
        dataset("paired", "test"),
        cfg,
        batch_size=32,
        device="cpu",
    )
    summary = report.summarize(output, scores, beta=0.1)
    return {
        "violation": summary.rewards.violation_fraction,
        "win_rate": summary.rewards.win_rate,
        "accuracy": summary.pair_accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=960, help="training pairs seen by every run")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        models = build_models(Path(folder), 64, 2)
        print("sort size | scope | micro x accum. | steps | held-out violation | win rate | pair acc. | RSS")
        for size in SORT_SIZES:
            runs = [("local", size, 1)] + ([("step", 2, size // 2)] if size > 2 else [])
            for scope, batch, accumulation in runs:
                steps = options.budget // size
                result = run_in_child(
                    train_and_score,
                    models,
                    Path(folder) / f"{scope}-{size}",
                    scope,
                    batch,
                    accumulation,
                    steps,
                )
                print(
                    f"{size:9} | {scope:5} | {batch:>5} x {accumulation:<12} | {steps:5} | "
                    f"{result['violation']:18.3f} | {result['win_rate']:8.3f} | {result['accuracy']:9.3f} | "
                    f"{result['peak_rss_mib']:.0f} MiB"
                )


if __name__ == "__main__":
    main()
