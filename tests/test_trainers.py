"""The trainers' loss path: equal to TRL's own AOT where TRL defines it, and exact across ranks."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from trainer_setup import (
    BETA,
    PAIRS,
    load,
    loss_path,
    paired_trainer,
    run_step,
    step_trainer,
    unpaired_trainer,
)
from trl import DPOTrainer

from axolotl_aot.integration import trainers
from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.trainers import AOTPairedTrainer, AOTUnpairedTrainer
from axolotl_aot.ot.losses import aot_paired_loss


def test_local_scope_equals_trl_aot_on_the_same_batch_and_model(models, tmp_path):
    ours = paired_trainer(AOTPairedTrainer, models, tmp_path / "ours", AOTArgs(aot_sort_scope="local"))
    trl = paired_trainer(DPOTrainer, models, tmp_path / "trl", loss_type=["aot"])
    batch = next(iter(trl.get_train_dataloader()))
    losses, grads = [], []
    for trainer in (ours, trl):
        trainer.model.train()
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in trainer.model.parameters()]))
    assert abs(losses[0].item() - torch.log(torch.tensor(2.0)).item()) > 1e-3  # policy != reference
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    for key in ("aot/violation_fraction", "aot/win_rate", "aot/sort_size", "rewards/margins"):
        assert key in ours._metrics["train"]
    assert ours._metrics["train"]["aot/sort_size"] == [float(PAIRS)]


def test_a_training_step_is_trls_without_a_garbage_collection(models, tmp_path, monkeypatch):
    """axolotl 0.19's DPO trainer runs gc.collect() after every training step (0.36 s a step of the
    throughput benchmark's model); the AOT trainers run TRL's step, with the same loss."""
    trainer = paired_trainer(AOTPairedTrainer, models, tmp_path, AOTArgs(aot_sort_scope="local"))
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    with torch.no_grad():
        expected = trainer.compute_loss(trainer.model, batch)
    collected = []
    monkeypatch.setattr(gc, "collect", lambda *args: collected.append(args) or 0)
    trainer.current_gradient_accumulation_steps = 1  # as the Trainer's loop sets it
    loss = trainer.training_step(trainer.model, batch)
    assert collected == []
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)


def test_cost_and_smoothing_settings_reach_the_loss(models, tmp_path):
    settings = AOTArgs(aot_sort_scope="local", aot_cost="least_squares")
    ours = paired_trainer(AOTPairedTrainer, models, tmp_path, settings)
    batch = next(iter(ours.get_train_dataloader()))
    with torch.no_grad():
        loss = ours.compute_loss(ours.model, batch)
        chosen, rejected = ours.forward_rows(ours.model, batch).columns[:2]
        ref_chosen, ref_rejected = ours.compute_ref_log_probs(ours.ref_model, batch)
    expected = aot_paired_loss(chosen, rejected, ref_chosen, ref_rejected, beta=BETA, cost="least_squares")
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-6)


# ---- multi-rank: the trainers' loss path in spawned gloo processes ----


def paired_rows_of(batch: dict, keep: list[int]) -> dict:
    """Pairs ``keep`` of a DPO batch laid out [chosen..., rejected...]."""
    n = len(batch["ref_chosen_logps"])
    both = keep + [n + i for i in keep]
    return {
        key: (value[both] if key not in ("ref_chosen_logps", "ref_rejected_logps") else value[keep])
        for key, value in batch.items()
    }


def rank_worker(rank: int, ranks: int, init: str, folder: str, kind: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=ranks)
    try:
        data = torch.load(f"{folder}/batch.pt")
        model = load(Path(data["model"])).train()
        cls = AOTPairedTrainer if kind == "paired" else AOTUnpairedTrainer
        trainer = loss_path(cls, model, "world")
        loss = trainer._compute_loss(model, data["parts"][rank])
        loss.backward()
        grads = {name: p.grad for name, p in model.named_parameters()}
        metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
        torch.save({"loss": loss.detach(), "grads": grads, "metrics": metrics}, f"{folder}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def single_process(cls, model_path: Path, batch: dict) -> tuple[torch.Tensor, dict, dict]:
    model = load(model_path).train()
    trainer = loss_path(cls, model, "local")
    loss = trainer._compute_loss(model, batch)
    loss.backward()
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return loss.detach(), {name: p.grad for name, p in model.named_parameters()}, metrics


def with_reference_logps(trainer, batch: dict, kind: str) -> dict:
    with torch.no_grad():
        if kind == "paired":
            batch["ref_chosen_logps"], batch["ref_rejected_logps"] = trainer.compute_ref_log_probs(
                trainer.ref_model, batch
            )
        else:
            batch["ref_logps"] = trainer.compute_ref_log_probs(trainer.ref_model, batch)[0]
    return batch


@pytest.mark.training
@pytest.mark.parametrize("kind", ["paired", "unpaired"])
def test_world_scope_across_two_ranks_equals_one_process_on_the_union(models, tmp_path, kind):
    if kind == "paired":
        trainer = paired_trainer(AOTPairedTrainer, models, tmp_path / "t")
        batch = with_reference_logps(trainer, next(iter(trainer.get_train_dataloader())), kind)
        parts = [paired_rows_of(batch, [0, 1, 2]), paired_rows_of(batch, [3, 4, 5, 6, 7])]
        cls = AOTPairedTrainer
    else:
        trainer = unpaired_trainer(models, tmp_path / "t")
        batch = with_reference_logps(trainer, next(iter(trainer.get_train_dataloader())), kind)
        labels = batch["label"].tolist() if torch.is_tensor(batch["label"]) else list(batch["label"])
        positives = [i for i, label in enumerate(labels) if label]
        # Rank 0 holds positives only: one-sided locally, two-sided in the world sort.
        first = positives[:2]
        rest = [i for i in range(len(labels)) if i not in first]
        parts = [
            {k: (v[first] if torch.is_tensor(v) else [v[i] for i in first]) for k, v in batch.items()},
            {k: (v[rest] if torch.is_tensor(v) else [v[i] for i in rest]) for k, v in batch.items()},
        ]
        cls = AOTUnpairedTrainer
    torch.save({"model": str(models[0]), "parts": parts}, tmp_path / "batch.pt")
    mp.spawn(rank_worker, args=(2, str(tmp_path / "init"), str(tmp_path), kind), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"{rank}.pt") for rank in range(2)]

    expected_loss, expected_grads, expected_metrics = single_process(cls, models[0], batch)
    for result in results:
        torch.testing.assert_close(result["loss"], expected_loss, rtol=0, atol=1e-6)
        for key in ("aot/violation_fraction", "aot/win_rate", "aot/sort_size"):
            assert result["metrics"][key] == pytest.approx(expected_metrics[key], abs=1e-6)
    # Data parallelism averages the ranks' gradients: the average must be the union's gradient.
    for name, grad in expected_grads.items():
        averaged = (results[0]["grads"][name] + results[1]["grads"][name]) / 2
        torch.testing.assert_close(averaged, grad, rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in expected_grads.values())


def test_a_one_sided_local_scope_gives_zero_loss_no_nan_and_is_counted(models, tmp_path):
    trainer = unpaired_trainer(models, tmp_path)
    batch = with_reference_logps(trainer, next(iter(trainer.get_train_dataloader())), "unpaired")
    positives = [i for i, label in enumerate(batch["label"]) if label]
    only_positives = {
        k: (v[positives] if torch.is_tensor(v) else [v[i] for i in positives]) for k, v in batch.items()
    }
    model = load(models[0]).train()
    shell = loss_path(AOTUnpairedTrainer, model, "local")
    loss = shell._compute_loss(model, only_positives)
    loss.backward()
    assert loss.item() == 0.0
    assert all(torch.isfinite(p.grad).all() and not p.grad.any() for p in model.parameters())
    assert shell._metrics["train"]["aot/one_sided"] == [1.0]
    assert "aot/violation_fraction" not in shell._metrics["train"]


# ---- the loss inputs' finiteness, checked at the log ----


def test_a_nan_log_prob_raises_the_loss_error_at_the_log_not_in_the_loss(models, tmp_path, monkeypatch):
    """The trainer's loss calls skip the finiteness check (a device sync per call); ``log`` runs it and
    raises the loss's own error (the sort's metrics skip non-finite rewards and leave it to ``log``)."""
    trainer = paired_trainer(AOTPairedTrainer, models, tmp_path, AOTArgs(aot_sort_scope="local"))
    batch = next(iter(trainer.get_train_dataloader()))
    forward_rows = trainer.forward_rows

    def with_nan(model, inputs, reference=None):
        """The policy's log-prob of pair 2's rejected completion is NaN."""
        rows = forward_rows(model, inputs, reference)
        rejected = rows.columns.rejected
        nan = torch.zeros_like(rejected).index_fill(0, torch.tensor([2]), float("nan"))
        return rows._replace(columns=rows.columns._replace(rejected=rejected + nan))

    monkeypatch.setattr(trainer, "forward_rows", with_nan)
    trainer.model.train()
    loss = trainer._compute_loss(trainer.model, batch)  # no error yet
    assert torch.isnan(loss)
    with pytest.raises(ValueError, match=r"^policy_rejected_logps has a non-finite value nan at index 2$"):
        trainer.log({"loss": loss.item()})
    trainer.log({"loss": 0.5})  # each input is checked once: nothing is left for the next log
    assert trainer.state.log_history[-1]["loss"] == 0.5


def test_unchecked_loss_inputs_are_checked_at_a_limit_when_no_log_comes(monkeypatch):
    """``predict`` never logs: the recorded inputs are checked (and dropped) at ``UNCHECKED_LIMIT``."""
    trainer = loss_path(AOTUnpairedTrainer, None, "local")
    monkeypatch.setattr(trainers, "UNCHECKED_LIMIT", 6)  # tensors: three calls of pos and neg
    pos, neg = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5, -1.0])
    for _ in range(10):
        trainer.loss_fn(pos, neg)
        assert 0 < len(trainer._unchecked) <= 6
    trainer.loss_fn(pos, torch.tensor([0.0, float("nan")]))  # no error yet
    with pytest.raises(ValueError, match=r"^neg has a non-finite value nan at index 1$"):
        for _ in range(3):
            trainer.loss_fn(pos, neg)


# ---- the optimizer-step scope ----


def test_step_scope_gradient_equals_one_large_micro_batch(models, tmp_path):
    large = step_trainer(models, tmp_path / "large", "local", batch=8, accumulation=1)
    rows = [large.train_dataset[i] for i in range(8)]
    large_loss, large_grad = run_step(large, [large.data_collator(rows)])
    small = step_trainer(models, tmp_path / "small", "step", batch=2, accumulation=4)
    micro_batches = [small.data_collator(rows[i : i + 2]) for i in range(0, 8, 2)]
    small_loss, small_grad = run_step(small, micro_batches)
    assert small_loss == pytest.approx(large_loss, abs=1e-6)  # the logged loss is the true step loss
    torch.testing.assert_close(small_grad, large_grad, rtol=1e-5, atol=1e-5)
    assert large_grad.abs().sum() > 0
    assert small._metrics["train"]["aot/sort_size"] == [8.0]  # logged once per step, over the whole step
    # A per-micro-batch sort gives a different gradient: the step scope is not a no-op.
    local = step_trainer(models, tmp_path / "local", "local", batch=2, accumulation=4)
    _, local_grad = run_step(local, [local.data_collator(rows[i : i + 2]) for i in range(0, 8, 2)])
    assert (local_grad - large_grad).abs().max() > 1e-4


def step_worker(rank: int, ranks: int, init: str, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=ranks)
    try:
        data = torch.load(f"{folder}/step.pt")
        model = load(Path(data["model"])).train()
        trainer = loss_path(AOTPairedTrainer, model, "step")
        trainer._prepare_inputs = lambda inputs: inputs  # the batches are already on the CPU
        micro_batches = data["parts"][rank]
        batch_samples, _ = trainer.get_batch_samples(
            iter(micro_batches), len(micro_batches), torch.device("cpu")
        )
        trainer.current_gradient_accumulation_steps = len(batch_samples)
        logged = 0.0
        for batch in batch_samples:  # what Trainer.training_step does around _compute_loss
            loss = trainer._compute_loss(model, batch) / len(batch_samples)
            loss.backward()
            logged += loss.item()
        grads = {name: p.grad for name, p in model.named_parameters()}
        torch.save({"logged": logged, "grads": grads}, f"{folder}/{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.training
def test_step_scope_across_two_ranks_equals_one_process_on_the_union(models, tmp_path):
    trainer = paired_trainer(AOTPairedTrainer, models, tmp_path / "t")
    batch = with_reference_logps(trainer, next(iter(trainer.get_train_dataloader())), "paired")
    # Each rank accumulates two micro-batches of two pairs.
    parts = [
        [paired_rows_of(batch, [0, 1]), paired_rows_of(batch, [2, 3])],
        [paired_rows_of(batch, [4, 5]), paired_rows_of(batch, [6, 7])],
    ]
    torch.save({"model": str(models[0]), "parts": parts}, tmp_path / "step.pt")
    mp.spawn(step_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"{rank}.pt") for rank in range(2)]
    expected_loss, expected_grads, _ = single_process(AOTPairedTrainer, models[0], batch)
    for result in results:
        assert result["logged"] == pytest.approx(expected_loss.item(), abs=1e-6)
    for name, grad in expected_grads.items():
        averaged = (results[0]["grads"][name] + results[1]["grads"][name]) / 2
        torch.testing.assert_close(averaged, grad, rtol=1e-5, atol=1e-5, msg=name)
