"""A run's checkpoints judged by what they write: their samples against the reference's, rewarded.

The reference is sampled once per run; each checkpoint is sampled on the same prompts with the
same seeds, its samples scored by the reward and teacher-forced under itself and the reference for
the KL estimate. For an adapter the reference is the adapter disabled (``reference_view``): no
second copy of the model in memory.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from axolotl_aot.tools.generation.prompts import Prompt
from axolotl_aot.tools.generation.rewards import Reward
from axolotl_aot.tools.generation.sampling import Samples, SamplingSettings, completion_logps, sample
from axolotl_aot.tools.generation.statistics import GenerationStats, generation_stats


@dataclass
class Generations:
    """One model's samples on the prompts (``prompts``: each prompt's text as the reward read it), their
    rewards, and (a policy's) log-ratios to the reference."""

    samples: Samples
    prompts: list[str]
    rewards: np.ndarray
    log_ratios: np.ndarray | None = None

    def write(self, path: Path) -> None:
        """Every sample as a JSON line: its prompt, completion, reward, token ids (the end token
        included where it ended with one) and, for a policy, log-ratio to the reference."""
        with path.open("w", encoding="utf-8") as file:
            for i, text in enumerate(self.samples.texts):
                row = {
                    "prompt": self.prompts[self.samples.prompt_of(i)],
                    "completion": text,
                    "reward": float(self.rewards[i]),
                    "token_ids": self.samples.tokens[i],
                    "ended": self.samples.ended[i],
                }
                if self.log_ratios is not None:
                    row["log_ratio"] = float(self.log_ratios[i])
                file.write(json.dumps(row, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def reference_view(model: Any, reference: Any | None) -> Iterator[Any]:
    """The reference of ``model``: ``reference``, or for a PEFT model without one its adapter disabled."""
    if reference is not None:
        yield reference
        return
    with model.disable_adapter():
        yield model


class GenerationJudge:
    """Samples and rewards on fixed ``prompts``; ``on_batch(prompts_done)`` hears of every batch."""

    def __init__(
        self, prompts: list[Prompt], reward: Reward, settings: SamplingSettings, tokenizer: Any
    ) -> None:
        self.prompts, self.reward, self.settings, self.tokenizer = prompts, reward, settings, tokenizer
        self.on_batch: Callable[[int], None] | None = None

    def generate(self, model: Any) -> Generations:
        """``model``'s samples and their rewards."""
        samples = sample(
            model, self.tokenizer, [p.ids for p in self.prompts], self.settings, on_batch=self.on_batch
        )
        owners = [self.prompts[samples.prompt_of(i)] for i in range(len(samples.texts))]
        return Generations(samples, [p.plain for p in self.prompts], self.reward(owners, samples.texts))

    def judge(
        self, policy: Any, reference: Any | None, baseline: Generations
    ) -> tuple[GenerationStats, Generations]:
        """``policy``'s samples against ``baseline`` (the reference's), with the log-ratios to ``reference``
        (None: ``policy`` is a PEFT model whose reference is its adapter disabled)."""
        ours = self.generate(policy)
        logps = completion_logps(policy, ours.samples, self.settings)
        with reference_view(policy, reference) as model:
            ours.log_ratios = logps - completion_logps(model, ours.samples, self.settings)
        stats = generation_stats(
            ours.rewards,
            baseline.rewards,
            ours.log_ratios,
            ours.samples.lengths,
            baseline.samples.lengths,
            np.array(ours.samples.ended),
            self.settings.samples,
        )
        return stats, ours
