"""Cross-rank sorting in spawned gloo processes equals one process on the concatenated samples."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from axolotl_aot.ot.distributed import all_gather_variable, gathered_loss, world_size
from axolotl_aot.ot.losses import aot_paired_loss, aot_unpaired_loss

# Per-rank sample counts, unequal and including an empty rank for one side.
UNPAIRED_SIZES = {2: [(3, 5), (6, 2)], 3: [(2, 4), (0, 3), (5, 1)]}
PAIRED_SIZES = {2: [3, 7], 3: [4, 1, 6]}


def global_tensors(seed: int, count: int, how_many: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(count, generator=g) * 4 for _ in range(how_many)]


def unpaired_worker(rank: int, ranks: int, init_file: str, out: str, cost: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=ranks)
    try:
        sizes = UNPAIRED_SIZES[ranks]
        pos_all, neg_all = global_tensors(0, 100, 2)
        pos_all = pos_all[: sum(s[0] for s in sizes)]
        neg_all = neg_all[: sum(s[1] for s in sizes)]
        pos = pos_all.split([s[0] for s in sizes])[rank].clone().requires_grad_()
        neg = neg_all.split([s[1] for s in sizes])[rank].clone().requires_grad_()
        loss = gathered_loss(functools.partial(aot_unpaired_loss, beta=0.3, cost=cost), pos, neg)
        loss.backward()
        gathered, own = all_gather_variable(pos)
        torch.save(
            {
                "loss": loss.detach(),
                "pos_grad": pos.grad,
                "neg_grad": neg.grad,
                "gathered": gathered,
                "own": (own.start, own.stop),
            },
            f"{out}/{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def paired_worker(rank: int, ranks: int, init_file: str, out: str, cost: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=ranks)
    try:
        sizes = PAIRED_SIZES[ranks]
        logps = [x[: sum(sizes)] for x in global_tensors(1, 100, 4)]
        pc, pr = (x.split(sizes)[rank].clone().requires_grad_() for x in logps[:2])
        rc, rr = (x.split(sizes)[rank].clone() for x in logps[2:])  # the reference has no gradient
        loss = gathered_loss(functools.partial(aot_paired_loss, beta=0.5, cost=cost), pc, pr, rc, rr)
        loss.backward()
        torch.save({"loss": loss.detach(), "pc_grad": pc.grad, "pr_grad": pr.grad}, f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def spawn(worker, ranks: int, tmp_path: Path, cost: str) -> list[dict]:
    mp.spawn(worker, args=(ranks, str(tmp_path / "init"), str(tmp_path), cost), nprocs=ranks, join=True)
    return [torch.load(tmp_path / f"{rank}.pt") for rank in range(ranks)]


@pytest.mark.training
@pytest.mark.parametrize("cost", ["logistic", "squared_hinge"])
@pytest.mark.parametrize("ranks", [2, 3])
def test_world_sorted_unpaired_loss_and_gradients_equal_one_process(ranks, cost, tmp_path):
    results = spawn(unpaired_worker, ranks, tmp_path, cost)
    sizes = UNPAIRED_SIZES[ranks]
    pos_all, neg_all = global_tensors(0, 100, 2)
    pos_all = pos_all[: sum(s[0] for s in sizes)].requires_grad_()
    neg_all = neg_all[: sum(s[1] for s in sizes)].requires_grad_()
    expected = aot_unpaired_loss(pos_all, neg_all, beta=0.3, cost=cost)
    expected.backward()
    pos_grads = pos_all.grad.split([s[0] for s in sizes])
    neg_grads = neg_all.grad.split([s[1] for s in sizes])
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["loss"], expected.detach(), rtol=0, atol=1e-6)
        torch.testing.assert_close(result["pos_grad"], pos_grads[rank], rtol=0, atol=1e-6)
        torch.testing.assert_close(result["neg_grad"], neg_grads[rank], rtol=0, atol=1e-6)
        torch.testing.assert_close(result["gathered"], pos_all.detach(), rtol=0, atol=0)
        start = sum(s[0] for s in sizes[:rank])
        assert result["own"] == (start, start + sizes[rank][0])
    assert any(result["pos_grad"].abs().sum() > 0 for result in results)


@pytest.mark.training
@pytest.mark.parametrize("ranks", [2, 3])
def test_world_sorted_paired_loss_and_gradients_equal_one_process(ranks, tmp_path):
    results = spawn(paired_worker, ranks, tmp_path, "logistic")
    sizes = PAIRED_SIZES[ranks]
    pc, pr, rc, rr = (x[: sum(sizes)] for x in global_tensors(1, 100, 4))
    pc.requires_grad_()
    pr.requires_grad_()
    expected = aot_paired_loss(pc, pr, rc, rr, beta=0.5)
    expected.backward()
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["loss"], expected.detach(), rtol=0, atol=1e-6)
        torch.testing.assert_close(result["pc_grad"], pc.grad.split(sizes)[rank], rtol=0, atol=1e-6)
        torch.testing.assert_close(result["pr_grad"], pr.grad.split(sizes)[rank], rtol=0, atol=1e-6)
    # The world sort is not the mean of per-rank sorts (docs/method.md, "Sorting across ranks
    # (world scope)"): gathering changes the target.
    per_rank = [
        aot_paired_loss(*(x.detach().split(sizes)[r] for x in (pc, pr, rc, rr)), beta=0.5)
        for r in range(ranks)
    ]
    assert abs(expected.item() - torch.stack(per_rank).mean().item()) > 1e-4


def test_without_torch_distributed_it_is_a_no_op():
    assert world_size() == 1
    x = torch.randn(4, requires_grad=True)
    gathered, own = all_gather_variable(x)
    assert torch.equal(gathered, x.detach()) and own == slice(0, 4)
    y = torch.randn(2)
    loss = gathered_loss(functools.partial(aot_unpaired_loss, beta=1.0), x, y)
    expected = aot_unpaired_loss(x, y, beta=1.0)
    assert loss.item() == expected.item()
    assert loss.grad_fn is not None
    with pytest.raises(ValueError, match=r"1-D tensor; got shape \(2, 2\)"):
        all_gather_variable(torch.zeros(2, 2))
