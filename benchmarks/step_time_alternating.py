"""rl: aot vs TRL's AOT step time in one process, alternating optimizer steps.

    .venv/bin/python benchmarks/step_time_alternating.py --steps 60 --warmup 6

Separate child processes differ by ~10% run to run on a shared machine; alternating the two
trainers step by step in one process exposes both to the same drift, which resolves the few
percent the comparison is about. Each step is what the Trainer's loop does: fetch the
micro-batch, forward and backward, optimizer step. Memory is not separable here (see step_time.py).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import build_models, trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        models = build_models(Path(folder), 256, 4)
        trainers = {
            name: trainer(
                name, models, Path(folder) / name, per_device_train_batch_size=options.batch, max_steps=1
            )
            for name in ("aot", "trl-aot")
        }
        batches, times = {}, {name: [] for name in trainers}
        for name, built in trainers.items():
            built.create_optimizer()
            built.model.train()
            batches[name] = iter(built.get_train_dataloader())
        for step in range(options.steps):
            order = list(trainers) if step % 2 == 0 else list(reversed(trainers))
            for name in order:
                built = trainers[name]
                start = time.perf_counter()
                samples, count = built.get_batch_samples(batches[name], 1, torch.device("cpu"))
                built.current_gradient_accumulation_steps = len(samples)
                for inputs in samples:
                    built.training_step(built.model, inputs, count)
                built.optimizer.step()
                built.optimizer.zero_grad()
                times[name].append(time.perf_counter() - start)
        ours, base = (statistics.median(times[name][options.warmup :]) for name in ("aot", "trl-aot"))
        print(
            f"rl: aot / TRL dpo_loss_type [aot], alternating: {ours:.3f} s / {base:.3f} s = {ours / base:.3f}"
        )


if __name__ == "__main__":
    main()
