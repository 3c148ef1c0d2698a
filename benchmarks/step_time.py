"""Step time and peak memory of the AOT trainers against their baselines, side by side.

    .venv/bin/python benchmarks/step_time.py --steps 30 --warmup 5 [--only N]

1. rl: aot (world scope) vs axolotl's rl: dpo + dpo_loss_type: [aot] (TRL's AOT), same micro-batch;
2. rl: aot_unpaired vs rl: kto on the same unpaired data (KTO pays a KL forward);
3. aot_sort_scope: step vs local at the same micro-batch and accumulation.
Each variant trains in its own child process on a locally built Llama (hidden 256, 4 layers);
step times are medians over the steps after the warm-up.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import build_models, run_in_child, timed_training, trainer

COMPARISONS = [
    (
        "rl: aot (world) / TRL dpo_loss_type [aot]",
        ("aot", {}),
        ("trl-aot", {}),
        {"per_device_train_batch_size": 8},
    ),
    ("rl: aot_unpaired / rl: kto", ("aot-unpaired", {}), ("kto", {}), {"per_device_train_batch_size": 8}),
    (
        "aot_sort_scope step / local",
        ("aot", {"scope": "step"}),
        ("aot", {"scope": "local"}),
        {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4},
    ),
]


def variant(name: str, models: tuple[Path, Path], output: Path, args: dict, warmup: int) -> dict:
    return timed_training(trainer(name, models, output, **args), warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--only", type=int, choices=(1, 2, 3), help="run one comparison (1-based)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        models = build_models(Path(folder), options.hidden_size, options.layers)
        chosen = [COMPARISONS[options.only - 1]] if options.only else COMPARISONS
        for title, (ours, our_args), (base, base_args), shared in chosen:
            results = []
            for name, extra in ((ours, our_args), (base, base_args)):
                args = {**shared, **extra, "max_steps": options.steps}
                results.append(run_in_child(variant, name, models, Path(folder) / name, args, options.warmup))
            (a, b) = results
            print(
                f"{title}: step {a['step_seconds']:.3f} s / {b['step_seconds']:.3f} s = "
                f"{a['step_seconds'] / b['step_seconds']:.3f}; peak RSS {a['peak_rss_mib']:.0f} / "
                f"{b['peak_rss_mib']:.0f} MiB = {a['peak_rss_mib'] / b['peak_rss_mib']:.3f}"
            )


if __name__ == "__main__":
    main()
