"""Data-parallel training on a CPU-only machine: torchrun through the real entry point, and the
refusal of a distributed state in which the ranks would not shard the data."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from axolotl_runs import (
    final_weights,
    free_port,
    log_history,
    logged_steps,
    make_config,
    max_difference,
    small_dataset,
    train,
    with_dataset,
)
from safetensors.torch import load_file

from axolotl_aot.integration.launch import check_data_sharding
from axolotl_aot.integration.sampler import LabelMixingSampler

pytestmark = pytest.mark.training

STEPS = 3
SGD = {"optimizer": "sgd", "max_grad_norm": 0.0, "learning_rate": 0.5, "lr_scheduler": "constant"}


def run(tmp_path: Path, tiny_model: Path, mode: str, launcher: str, processes: int = 1, **changes) -> Path:
    tmp_path.mkdir()
    config = make_config(tmp_path, mode, tiny_model, max_steps=STEPS, **SGD, **changes)
    done = train(with_dataset(config, small_dataset(tmp_path, mode, 48)), launcher, processes)
    assert done.returncode == 0, done.stderr[-4000:]
    assert logged_steps(done) == STEPS  # only rank 0 logs
    return tmp_path / "out"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The reference: one process, micro-batch 8."""
    return run(tmp_path_factory.mktemp("one") / "run", tiny_model, "paired", "python", micro_batch_size=8)


@pytest.mark.parametrize(
    ("launcher", "changes"),
    [
        ("torchrun", {"aot_sort_scope": "world", "micro_batch_size": 4}),
        ("accelerate", {"aot_sort_scope": "step", "micro_batch_size": 2, "gradient_accumulation_steps": 2}),
    ],
    ids=["torchrun-world-4", "accelerate-step-2x2"],
)
def test_two_cpu_processes_equal_one_process_with_the_whole_batch(
    tmp_path, tiny_model, one_process, launcher, changes
):
    out = run(tmp_path / "run", tiny_model, "paired", launcher, processes=2, **changes)
    logs = [entry for entry in log_history(out) if "loss" in entry]
    assert [entry["aot/sort_size"] for entry in logs] == [8] * STEPS  # both ranks' samples in every sort
    assert logs[-1]["epoch"] == pytest.approx(STEPS * 8 / 48)  # the ranks shard the data
    start = load_file(tiny_model / "model.safetensors")
    expected = final_weights(one_process)
    update = max_difference(expected, start)
    difference = max_difference(final_weights(out), expected)
    print(f"{launcher} {changes}: max |2 processes - 1 process| = {difference:.3g}, update {update:.3g}")
    assert update > 1e-2
    assert difference <= 1e-3 * update


def test_unpaired_over_two_processes_sorts_both_labels(tmp_path, tiny_model):
    out = run(tmp_path / "run", tiny_model, "unpaired", "torchrun", processes=2, micro_batch_size=4)
    logs = [entry for entry in log_history(out) if "loss" in entry]
    assert [entry["aot/sort_size"] for entry in logs] == [8] * STEPS
    assert all(entry["aot/one_sided"] == 0 for entry in logs)


def spawn(worker, *args) -> None:
    """``worker(rank, *args)`` in 2 processes with torchrun's environment and a gloo process group."""
    mp.spawn(_as_rank, args=(free_port(), worker, *args), nprocs=2, join=True)


def _as_rank(rank: int, port: int, worker, *args) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        worker(rank, *args)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        dist.destroy_process_group()


def sharded_batches_worker(rank: int, labels: list[bool], out: str) -> None:
    """What the Trainer does with the sampler in accelerate's multi-CPU state (the plugin's ``use_cpu``)."""
    accelerator = Accelerator(cpu=True)
    sampler = LabelMixingSampler(labels, batch_size=4, seed=5)
    loader = accelerator.prepare(
        torch.utils.data.DataLoader(range(len(labels)), batch_size=4, sampler=sampler)
    )
    epochs = []
    for epoch in range(2):
        loader.set_epoch(epoch)  # as the Trainer does before each epoch
        epochs.append([batch.tolist() for batch in loader])
    torch.save({"num_processes": accelerator.num_processes, "epochs": epochs}, f"{out}/{rank}.pt")


def test_each_rank_micro_batch_holds_both_labels_and_ranks_split_the_epoch(tmp_path):
    labels = [True] * 30 + [False] * 10
    spawn(sharded_batches_worker, labels, str(tmp_path))
    ranks = [torch.load(tmp_path / f"{rank}.pt") for rank in range(2)]
    assert [r["num_processes"] for r in ranks] == [2, 2]
    for epoch in range(2):
        one_process = LabelMixingSampler(labels, batch_size=4, seed=5)
        one_process.set_epoch(epoch)
        order = list(one_process)
        chunks = [order[i : i + 4] for i in range(0, len(order), 4)]
        assert ranks[0]["epochs"][epoch] == chunks[0::2] and ranks[1]["epochs"][epoch] == chunks[1::2]
        for rank in ranks:
            assert all(
                any(labels[i] for i in batch) and not all(labels[i] for i in batch)
                for batch in rank["epochs"][epoch]
            )
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]


def sharding_guard_worker(rank: int, cpu: bool, out: str) -> None:
    """torch.distributed with 2 ranks, and an Accelerator as the Trainer would create it."""
    trainer = SimpleNamespace(accelerator=Accelerator(cpu=cpu))
    try:
        check_data_sharding(trainer)
        message = ""
    except RuntimeError as error:
        message = str(error)
    Path(f"{out}/{rank}.txt").write_text(message)


def test_ranks_that_would_train_on_the_same_data_are_refused(tmp_path):
    """Without accelerate's CPU mode (what torchrun gave before the plugin set ``use_cpu``), the
    Accelerator is single-process while torch.distributed has 2 ranks: refused. With it: accepted."""
    spawn(sharding_guard_worker, False, str(tmp_path))
    for rank in range(2):
        message = (tmp_path / f"{rank}.txt").read_text()
        assert "torch.distributed runs 2 processes but the Trainer shards the data over 1" in message
        assert "torchrun --nproc_per_node N -m axolotl.cli.train CONFIG" in message
    (tmp_path / "ok").mkdir()
    spawn(sharding_guard_worker, True, str(tmp_path / "ok"))
    assert [(tmp_path / f"ok/{rank}.txt").read_text() for rank in range(2)] == ["", ""]


@pytest.mark.parametrize("mode", ["paired", "unpaired"])
def test_precomputed_reference_log_probs_over_two_processes_are_refused_before_the_model_loads(
    tmp_path, tiny_model, mode
):
    """TRL would crash on rank 1 reading back the cache file rank 0 wrote next to its own dataset copy."""
    config = make_config(tmp_path, mode, tiny_model, max_steps=1, precompute_ref_log_probs=True)
    done = train(with_dataset(config, small_dataset(tmp_path, mode, 16)), "torchrun", 2)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "precompute_ref_log_probs: true cannot be used with 2 processes" in output
    assert "Remove precompute_ref_log_probs" in output
    assert "FileNotFoundError" not in output and "Loading weights" not in output
