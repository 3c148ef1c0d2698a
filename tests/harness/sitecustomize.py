"""Test harness, never shipped: lets accelerate and axolotl start FSDP2 and DeepSpeed on a CPU.

The sharded-engine tests put this directory on the ``PYTHONPATH`` of the processes they launch
(``torchrun``'s ranks are new interpreters: a conftest patch would not reach them), and Python
imports ``sitecustomize`` at start-up. Each patch answers one place that assumes an accelerator
(accelerate 1.13/1.15, axolotl 0.19/0.21) and changes nothing when one is present:

1. ``PartialState._prepare_backend`` picks no backend for a launch with ``LOCAL_RANK`` set and
   neither an accelerator nor ``cpu=True`` (DeepSpeed, which accelerate selects only when
   ``cpu`` is false): here it is the multi-CPU state over gloo.
2. ``AcceleratorState.__init__`` promotes only accelerator states (MULTI_GPU, MULTI_XPU, ...) to
   ``DistributedType.FSDP``; here a multi-CPU state with an FSDP plugin is promoted too.
3. axolotl's ``build_parallelism_config`` builds its device mesh on ``"cuda"``: the mesh is
   built on the CPU when CUDA is absent.

DeepSpeed itself runs on a CPU with ``DS_ACCELERATOR=cpu`` (gloo), which the tests set.

4. The ranks choose packed rows as a large model does (``packing.RowCost``: its matmuls outweigh
   attention over a row), and print ``PACKED_MARK`` once when a batch is packed. For the tiny
   model's own cost its short, near-equal sequences are not worth packing, so the one-process
   references (launched without this harness) stay padded: the two-rank runs compare packed
   batches under the engine with padded ones.
"""

from __future__ import annotations

import os

if os.environ.get("AOT_TEST_CPU_ENGINES") == "1":
    import torch
    from accelerate.parallelism_config import ParallelismConfig
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    def _cpu_only() -> bool:
        return not torch.accelerator.is_available()

    _prepare_backend = PartialState._prepare_backend

    def _prepare_cpu_backend(self, cpu=False, sagemaker_dp=False, backend=None):
        backend, distributed_type = _prepare_backend(self, cpu, sagemaker_dp, backend)
        if (
            distributed_type == DistributedType.NO
            and _cpu_only()
            and int(os.environ.get("WORLD_SIZE", 1)) > 1
        ):
            return "gloo", DistributedType.MULTI_CPU
        return backend, distributed_type

    _accelerator_state_init = AcceleratorState.__init__

    def _accelerator_state_with_cpu_fsdp(self, *args, fsdp_plugin=None, **kwargs):
        _accelerator_state_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            PartialState._shared_state["distributed_type"] = self.distributed_type  # as accelerate does

    _build_device_mesh = ParallelismConfig.build_device_mesh

    def _build_cpu_device_mesh(self, device_type):
        return _build_device_mesh(self, "cpu" if device_type == "cuda" and _cpu_only() else device_type)

    PartialState._prepare_backend = _prepare_cpu_backend
    AcceleratorState.__init__ = _accelerator_state_with_cpu_fsdp
    ParallelismConfig.build_device_mesh = _build_cpu_device_mesh

    import sys

    from axolotl_aot.integration import packing

    PACKED_MARK = "AOT test harness: packed rows"
    _layout = packing.layout

    def _large_model_layout(input_ids, attention_mask, completion_mask, attention, cost):
        tokens = _layout(input_ids, attention_mask, completion_mask, attention, packing.RowCost(1.0, 0.0))
        if tokens.position_ids is not None and not getattr(_large_model_layout, "said", False):
            _large_model_layout.said = True
            print(PACKED_MARK, file=sys.stderr, flush=True)
        return tokens

    packing.layout = _large_model_layout
