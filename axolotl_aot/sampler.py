"""Micro-batches that always hold both labels, for ``rl: aot_unpaired``.

Unpaired AOT couples the positives of a sort scope with its negatives; a micro-batch
of one label has nothing to couple. ``LabelMixingSampler`` orders the dataset so that
every consecutive chunk of ``batch_size`` indices (one micro-batch; accelerate deals
whole chunks to ranks) holds both labels, in the dataset's proportion or 1:1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch.utils.data import Sampler


class LabelMixingSampler(Sampler[int]):
    """Yields dataset indices, ``batch_size`` at a time, each chunk with both labels.

    Each epoch reshuffles both labels and covers every sample of the majority label once;
    the minority label is cycled (reshuffled each pass) when the mix asks for more of it.
    """

    def __init__(
        self,
        labels: Sequence[bool],
        batch_size: int,
        ratio: Literal["proportional", "equal"] = "proportional",
        seed: int = 0,
    ) -> None:
        label_tensor = torch.as_tensor(list(labels), dtype=torch.bool)
        self.positives = label_tensor.nonzero().flatten()
        self.negatives = (~label_tensor).nonzero().flatten()
        check_both_labels(len(self.positives), len(self.negatives))
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 to hold both labels; got {batch_size}")
        self.batch_size = batch_size
        share = 0.5 if ratio == "equal" else len(self.positives) / len(label_tensor)
        self.per_batch = self._positives_per_batch(share)
        self.seed = seed
        self.epoch = 0

    def _positives_per_batch(self, share: float) -> list[int]:
        """Positives of each chunk: error diffusion keeps the running share on target, clipped to [1, B-1]."""
        counts, placed = [], 0
        # Enough chunks to show every sample of the label that runs out last.
        batches = max(
            -(-len(self.positives) // max(1, round(share * self.batch_size))),
            -(-len(self.negatives) // max(1, round((1 - share) * self.batch_size))),
        )
        for b in range(1, batches + 1):
            count = min(max(round(b * self.batch_size * share) - placed, 1), self.batch_size - 1)
            counts.append(count)
            placed += count
        return counts

    def __len__(self) -> int:
        return len(self.per_batch) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        pos = _cycle(self.positives, generator)
        neg = _cycle(self.negatives, generator)
        for count in self.per_batch:
            chunk = [next(pos) for _ in range(count)] + [next(neg) for _ in range(self.batch_size - count)]
            order = torch.randperm(self.batch_size, generator=generator).tolist()
            yield from (chunk[i] for i in order)


def check_both_labels(n_pos: int, n_neg: int) -> None:
    """Unpaired AOT needs desirable and undesirable samples; say which is missing and what to do."""
    if n_pos and n_neg:
        return
    missing = "label=False (undesirable)" if n_pos else "label=True (desirable)"
    raise ValueError(
        f"rl: aot_unpaired needs samples of both labels, but the training set has {n_pos} with label=True "
        f"and {n_neg} with label=False: add {missing} rows (unpairing a paired dataset gives one of "
        "each per pair), or use rl: aot for paired data"
    )


def _cycle(indices: torch.Tensor, generator: torch.Generator) -> Iterator[int]:
    while True:
        yield from indices[torch.randperm(len(indices), generator=generator)].tolist()
