"""The random state a forward pass starts from, captured and replayed.

The step scope scores each micro-batch without gradients, couples the step's samples and
later runs the same micro-batch again with gradients (docs/method.md, "The step scope").
The per-sample weights are the exact gradient only if the second forward computes the
rewards the first one scored. A forward that draws random numbers in training mode
(dropout that TRL's ``disable_dropout: false`` keeps, a Mixture-of-Experts router's jitter
noise, stochastic depth) would draw different ones; replaying the generators' state makes it
draw the same, as GradCache does. Covered: torch's CPU generator and every CUDA device's.
Not covered: Python's ``random``, NumPy, other accelerators' generators; the trainers compare
the two passes' rewards and warn when they differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RandomState:
    """torch's CPU generator state and each initialised CUDA device's."""

    cpu: torch.Tensor
    cuda: tuple[torch.Tensor, ...]

    @classmethod
    def capture(cls) -> RandomState:
        cuda = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else ()
        return cls(torch.get_rng_state(), cuda)

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        """Run the block from this state; afterwards the generators are where they were before it,
        so that the replay leaves the rest of training's random stream untouched."""
        with torch.random.fork_rng(devices=range(len(self.cuda)), device_type="cuda"):
            torch.set_rng_state(self.cpu)
            for device, state in enumerate(self.cuda):
                torch.cuda.set_rng_state(state, device)
            yield
