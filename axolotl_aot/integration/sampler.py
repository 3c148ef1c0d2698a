"""Micro-batches that always hold both labels, for ``rl: aot_unpaired``.

Unpaired AOT couples the positives of a sort scope with its negatives; a micro-batch
of one label has nothing to couple. ``LabelMixingSampler`` orders the dataset so that
every consecutive chunk of ``batch_size`` indices (one micro-batch; accelerate deals
whole chunks to ranks) holds both labels, in the dataset's proportion or 1:1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from torch.utils.data import Sampler

from axolotl_aot.integration.labels import check_both_labels, parsed_labels


class LabelMixingSampler(Sampler[int]):
    """Yields dataset indices, ``batch_size`` at a time, each chunk with both labels.

    Each epoch reshuffles both labels and shows every sample at least once; the label the
    mix exhausts first is cycled (reshuffled each pass) until the other is covered. The order
    is a function of ``(seed, epoch)`` only: the Trainer calls ``set_epoch`` before every epoch
    (through accelerate's data loader), so a run resumed from a checkpoint, which skips the
    epoch's trained batches, sees the uninterrupted run's order. Without ``set_epoch`` (a plain
    ``DataLoader``) each complete pass moves to the next epoch, as accelerate's seedable sampler does.
    """

    def __init__(
        self,
        labels: Sequence[Any],
        batch_size: int,
        ratio: Literal["proportional", "equal"] = "proportional",
        seed: int = 0,
    ) -> None:
        values = parsed_labels(labels, "the training set")
        check_both_labels(values)
        label_tensor = torch.as_tensor(values, dtype=torch.bool)
        self.positives = label_tensor.nonzero().flatten()
        self.negatives = (~label_tensor).nonzero().flatten()
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 to hold both labels; got {batch_size}")
        self.batch_size = batch_size
        share = 0.5 if ratio == "equal" else len(self.positives) / len(label_tensor)
        self.per_batch = self._positives_per_batch(share)
        self.seed = seed
        self.epoch = 0

    def _positives_per_batch(self, share: float) -> list[int]:
        """Positives of each chunk until both labels are covered once.

        Error diffusion keeps the running share on target; each chunk is clipped to
        [1, B-1] positives so that it holds both labels.
        """
        counts: list[int] = []
        positives = negatives = 0
        while positives < len(self.positives) or negatives < len(self.negatives):
            target = round((len(counts) + 1) * self.batch_size * share)
            count = min(max(target - positives, 1), self.batch_size - 1)
            counts.append(count)
            positives += count
            negatives += self.batch_size - count
        return counts

    def __len__(self) -> int:
        return len(self.per_batch) * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        pos = _cycle(self.positives, generator)
        neg = _cycle(self.negatives, generator)
        for count in self.per_batch:
            chunk = [next(pos) for _ in range(count)] + [next(neg) for _ in range(self.batch_size - count)]
            order = torch.randperm(self.batch_size, generator=generator).tolist()
            yield from (chunk[i] for i in order)
        self.set_epoch(self.epoch + 1)


def _cycle(indices: torch.Tensor, generator: torch.Generator) -> Iterator[int]:
    while True:
        yield from indices[torch.randperm(len(indices), generator=generator)].tolist()
