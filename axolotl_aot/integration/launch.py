"""Data-parallel launches: making them work on CPU-only machines and refusing silent duplicates.

Axolotl 0.19/0.21 assume a multi-process run has an accelerator per rank. Under
``torchrun --nproc_per_node N`` on a machine without one:

- ``normalize_config`` sets ``device_map = {"": LOCAL_RANK}`` whenever ``WORLD_SIZE != 1``, and
  transformers reads the integer as an accelerator index ("Cannot access accelerator device when
  none is available"); ``cpu_device_map`` puts every rank on the CPU instead.
- accelerate only treats the run as multi-CPU (gloo, data sharded over the ranks) when its state
  is created with ``cpu=True``; otherwise torch.distributed is initialised but every rank iterates
  the whole dataset, and a world- or step-scope sort gathers copies of the same samples.
  ``use_cpu: true`` in the training arguments (``cpu_training_args``) is that switch.

Both apply only when no accelerator is present, so GPU runs keep axolotl's placement.
``check_data_sharding`` stops a run whose ranks would not see disjoint data (any launch that
gets here wrong), naming the command that works.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from axolotl_aot.integration import compat
from axolotl_aot.ot.distributed import world_size

TORCHRUN = "torchrun --nproc_per_node N -m axolotl.cli.train CONFIG"


def cpu_data_parallel() -> bool:
    """A multi-process launch (``WORLD_SIZE > 1``) on a machine without any accelerator."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available()


def cpu_ranks_without_cuda_probe() -> Callable[[], None] | None:
    """A CPU-only multi-process run must get past axolotl's CUDA peer-access probe (``compat``): the
    function that puts the probe back, or None when nothing was changed."""
    return compat.skip_cuda_peer_probe() if cpu_data_parallel() else None


def cpu_device_map(cfg: Any) -> None:
    """Every rank's model on the CPU; axolotl would map rank ``LOCAL_RANK`` to accelerator ``LOCAL_RANK``."""
    if cpu_data_parallel():
        cfg.device_map = {"": "cpu"}


def cpu_training_args() -> dict[str, Any]:
    """``use_cpu``: accelerate's multi-CPU mode, which shards the data over the gloo ranks."""
    return {"use_cpu": True} if cpu_data_parallel() else {}


def check_data_sharding(trainer: Any) -> None:
    """Refuse to train when torch.distributed has more ranks than the Trainer shards data over.

    Every rank would then see the same micro-batches: gradients are averaged over copies, and
    ``aot_sort_scope: world``/``step`` sorts each sample ``world_size`` times.
    """
    ranks, processes = world_size(), trainer.accelerator.num_processes
    if ranks == processes:
        return
    raise RuntimeError(
        f"torch.distributed runs {ranks} processes but the Trainer shards the data over {processes} "
        f"(accelerate state: {trainer.accelerator.distributed_type}): every rank would train on the same "
        f"samples and AOT would sort copies of them. Launch with `{TORCHRUN}` or `accelerate launch "
        "--num_processes N -m axolotl.cli.train CONFIG`, and do not create the process group yourself "
        "or set ACCELERATE_USE_* variables by hand."
    )
