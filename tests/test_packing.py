"""Padding-free batches (``aot_padding_free``): packed rows give the padded batch's log-probs, losses
and gradients in every pass and mode, and a model that cannot take them is padded with the reason."""

from __future__ import annotations

import logging

import pytest
import torch
import transformers
from hypothesis import given
from hypothesis import strategies as st
from peft import LoraConfig, get_peft_model
from torch.distributed.fsdp import FSDPModule
from trainer_setup import load, paired_trainer, run_step, step_trainer, unpaired_trainer

from axolotl_aot.integration import packing
from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.logps import chunked_head, sequence_logps
from axolotl_aot.integration.trainers import AOTPairedTrainer
from axolotl_aot.tools.tiny_model import build_tiny_model

RTOL = 1e-5  # float32, relative (issue 28)


@pytest.fixture(autouse=True)
def large_model_rows(monkeypatch):
    """Rows as a large model chooses them (its matmuls outweigh attention over a row: one row here).
    For the tiny model's own cost, the test data's short sequences (17-27 tokens) are not worth packing."""
    monkeypatch.setattr(packing.RowCost, "of", classmethod(lambda cls, config: cls(1.0, 0.0)))


def ragged(batch: dict, seed: int = 0) -> dict:
    """``batch`` with each row cut to a random length (keeping its prompt and a completion token):
    right-padded rows of very different lengths, as real preference data has."""
    generator = torch.Generator().manual_seed(seed)
    batch = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    for row in range(len(batch["input_ids"])):
        length = int(batch["attention_mask"][row].sum())
        first = int(batch["completion_mask"][row].nonzero()[0]) + 1
        keep = int(torch.randint(first, length + 1, (1,), generator=generator))
        for key in ("attention_mask", "completion_mask"):
            batch[key][row, keep:] = 0
        batch["input_ids"][row, keep:] = 0
    return batch


def layout_of(model: torch.nn.Module, batch: dict) -> packing.Tokens:
    keys = ("input_ids", "attention_mask", "completion_mask")
    return packing.layout(
        *(batch[k] for k in keys), packing.attention_of(model), packing.RowCost.of(model.config)
    )


def assert_packs(model: torch.nn.Module, batch: dict) -> None:
    """The batch really is packed, into fewer tokens than padded: the comparison is not vacuous."""
    tokens = layout_of(model, batch)
    assert tokens.position_ids is not None
    assert tokens.input_ids.numel() < batch["input_ids"].numel()


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal to ``RTOL`` of each value, or of the largest for values near 0 (sums in another order)."""
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=RTOL * float(expected.abs().max()))


def grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def both(trainer, run) -> list:
    """``run()`` with the batch padded, then packed, from the same weights and gradients."""
    results = []
    for padding_free in (False, True):
        trainer.aot = trainer.aot.model_copy(update={"aot_padding_free": padding_free})
        trainer.model.zero_grad(set_to_none=True)
        results.append(run())
    return results


@given(st.lists(st.integers(1, 50), min_size=1, max_size=40), st.integers(0, 3))
def test_row_plan_places_every_sequence_once_within_the_capacity(lengths, doublings):
    capacity = max(lengths) * 2**doublings
    plan = packing.row_plan(lengths, capacity)
    assert sorted(s for row in plan for s in row) == list(range(len(lengths)))
    assert all(sum(lengths[s] for s in row) <= capacity for row in plan)
    # first-fit: no two rows could have been one
    assert all(sum(lengths[s] for s in a + b) > capacity for i, a in enumerate(plan) for b in plan[i + 1 :])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_give_each_sequence_its_padded_log_probs_and_gradients(tiny_model, attention):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attention)
    lengths = [5, 31, 12, 3, 40, 17, 9, 26]
    width = max(lengths)
    ids = torch.randint(1, 300, (len(lengths), width))
    mask = (torch.arange(width) < torch.tensor(lengths).unsqueeze(1)).long()
    completion = mask.clone()
    completion[:, :2] = 0
    weights = torch.randn(len(lengths))
    results = []
    for tokens in (
        packing.padded(ids, mask, completion),
        packing.packed(ids, completion, lengths, packing.row_plan(lengths, 2 * width)),
    ):
        model.zero_grad(set_to_none=True)
        logps = sequence_logps(chunked_head(model), tokens, chunk_size=16).logps
        (logps * weights).sum().backward()
        results.append((logps.detach(), grads(model), tokens.input_ids.numel()))
    (padded_logps, padded_grads, padded_size), (packed_logps, packed_grads, packed_size) = results
    assert packed_size < padded_size
    assert_close(packed_logps, padded_logps)
    assert_close(packed_grads, padded_grads)


def test_a_batch_not_padded_on_the_right_stays_padded():
    ids = torch.arange(12).reshape(2, 6)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    tokens = packing.layout(ids, mask, mask, "sdpa", packing.RowCost(1.0, 0.0))
    assert tokens.position_ids is None and tokens.attention_mask is mask


def test_flash_attention_takes_one_row_and_dense_attention_rows_of_least_work():
    lengths = [40, 5, 5, 5, 30, 10]
    ids = torch.ones(len(lengths), 40, dtype=torch.long)
    mask = (torch.arange(40) < torch.tensor(lengths).unsqueeze(1)).long()

    def shape(attention: str, cost: packing.RowCost) -> tuple[int, ...]:
        return tuple(packing.layout(ids, mask, mask, attention, cost).input_ids.shape)

    assert shape("flash_attention_2", packing.RowCost(1, 1)) == (1, 95)
    # attention dominating: rows of the longest sequence (40): [40], [30 5 5], [10 5]
    assert shape("sdpa", packing.RowCost(1, 1)) == (3, 40)
    # the matmuls alone: one row without filler
    assert shape("sdpa", packing.RowCost(1, 0)) == (1, 95)
    # equal lengths: nothing to save, the batch stays padded
    assert packing.layout(ids, torch.ones_like(ids), mask, "sdpa", packing.RowCost(1, 1)).position_ids is None


@pytest.mark.parametrize("chunk", [256, 0], ids=["chunked", "full-logits"])
@pytest.mark.parametrize("mode", ["paired", "unpaired"])
def test_training_loss_gradients_and_metrics_equal_padded(models, tmp_path, mode, chunk):
    settings = AOTArgs(aot_sort_scope="local", aot_logits_chunk_size=chunk)
    if mode == "paired":
        trainer = paired_trainer(AOTPairedTrainer, models, tmp_path, settings)
    else:
        trainer = unpaired_trainer(models, tmp_path, settings)
    batch = ragged(next(iter(trainer.get_train_dataloader())))
    assert_packs(trainer.model, batch)
    trainer.model.train()

    def train() -> tuple:
        trainer._metrics["train"].clear()
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        return loss.detach(), grads(trainer.model), dict(trainer._metrics["train"])

    (loss, grad, metrics), (packed_loss, packed_grad, packed_metrics) = both(trainer, train)
    assert_close(packed_loss, loss)
    assert_close(packed_grad, grad)
    assert packed_metrics.keys() == metrics.keys() and "entropy" in metrics
    for key, values in metrics.items():
        if key == "num_tokens":  # the running count of the trainer: both passes add to it
            continue
        assert packed_metrics[key] == pytest.approx(values, rel=RTOL, abs=1e-6), key


def test_reference_precompute_and_evaluation_passes_equal_padded(models, tmp_path):
    """TRL's ``precompute_ref_log_probs`` calls ``compute_ref_log_probs``; evaluation (``axolotl evaluate``,
    the eval loop) goes through ``prediction_step``; ``aot-cli report`` through ``forward_rows``."""
    trainer = paired_trainer(AOTPairedTrainer, models, tmp_path, AOTArgs(aot_sort_scope="local"))
    batch = ragged(next(iter(trainer.get_train_dataloader())), seed=1)
    assert_packs(trainer.model, batch)

    def passes() -> list[torch.Tensor]:
        with torch.no_grad():
            reference = trainer.compute_ref_log_probs(trainer.ref_model, batch)
            rows = trainer.forward_rows(trainer.model, batch)
        trainer._evaluation = []
        loss = trainer.prediction_step(trainer.model, batch, prediction_loss_only=True)[0]
        trainer._evaluation = None
        return [*reference, *rows.columns, loss]

    padded_values, packed_values = both(trainer, passes)
    for packed_value, padded_value in zip(packed_values, padded_values, strict=True):
        assert_close(packed_value, padded_value)


def test_step_scope_scoring_and_gradient_passes_equal_padded(models, tmp_path):
    trainer = step_trainer(models, tmp_path, "step", batch=4, accumulation=2)
    rows = [trainer.train_dataset[i] for i in range(8)]
    micro_batches = [ragged(trainer.data_collator(rows[i : i + 4]), seed=i) for i in (0, 4)]
    assert_packs(trainer.model, micro_batches[0])
    (loss, grad), (packed_loss, packed_grad) = both(trainer, lambda: run_step(trainer, micro_batches))
    assert packed_loss == pytest.approx(loss, rel=RTOL)
    assert_close(packed_grad, grad)
    assert not trainer.scope.replay_warned


def test_lora_policy_and_adapter_disabled_reference_equal_padded(tiny_model, tmp_path):
    trainer = paired_trainer(
        AOTPairedTrainer, (tiny_model, tiny_model), tmp_path, AOTArgs(aot_sort_scope="local")
    )
    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    trainer.model, trainer.ref_model = get_peft_model(load(tiny_model), config), None
    batch = ragged(next(iter(trainer.get_train_dataloader())), seed=2)
    assert_packs(trainer.model, batch)

    def train() -> tuple:
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        with torch.no_grad():
            reference = trainer.compute_ref_log_probs(trainer.model, batch)
        return loss.detach(), grads(trainer.model), reference

    (loss, grad, reference), (packed_loss, packed_grad, packed_reference) = both(trainer, train)
    assert grad.abs().sum() > 0  # the adapter trains
    assert_close(packed_loss, loss)
    assert_close(packed_grad, grad)
    assert_close(torch.cat(packed_reference), torch.cat(reference))


@pytest.mark.parametrize("chunk", [256, 0], ids=["chunked", "full-logits"])
def test_mixture_of_experts_router_loss_counts_real_tokens_only(tmp_path, monkeypatch, chunk):
    """The router loss of packed rows (real tokens, no filler) equals the padded batch's under its mask."""
    policy = build_tiny_model(tmp_path / "policy", family="mixtral")
    reference = build_tiny_model(tmp_path / "reference", family="mixtral", seed=1)
    settings = AOTArgs(aot_sort_scope="local", aot_logits_chunk_size=chunk)
    trainer = paired_trainer(AOTPairedTrainer, (policy, reference), tmp_path / "out", settings)
    assert trainer.aux_loss_enabled
    batch = ragged(next(iter(trainer.get_train_dataloader())), seed=3)
    pairs = lambda lengths, width, cost: [[i, i + 1] for i in range(0, len(lengths), 2)]  # noqa: E731
    monkeypatch.setattr(packing, "cheapest_plan", pairs)  # rows of two sequences: some with filler
    tokens = layout_of(trainer.model, batch)
    assert tokens.position_ids is not None and not tokens.real.bool().all()
    trainer.model.train()

    def train() -> tuple:
        rows = trainer.forward_rows(trainer.model, batch)
        (rows.policy.aux_loss + rows.columns[0].sum()).backward()
        return rows.policy.aux_loss.detach(), grads(trainer.model)

    (aux, grad), (packed_aux, packed_grad) = both(trainer, train)
    assert_close(packed_aux, aux)
    assert_close(packed_grad, grad)


def test_a_model_that_cannot_take_packed_rows_is_padded_with_the_reason_logged_once(
    models, tmp_path, monkeypatch, caplog
):
    trainer = paired_trainer(AOTPairedTrainer, models, tmp_path, AOTArgs(aot_sort_scope="local"))
    batch = ragged(next(iter(trainer.get_train_dataloader())))
    trainer.model.config._attn_implementation = "flex_attention"
    problem = packing.packing_problem(trainer.model)
    assert problem is not None and "'flex_attention'" in problem
    trainer.model.config._attn_implementation = "sdpa"  # the forward itself runs sdpa
    monkeypatch.setattr(packing, "packing_problem", lambda model: problem)
    seen = []
    hook = trainer.model.model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw), with_kwargs=True)
    with caplog.at_level(logging.WARNING, logger="axolotl_aot.integration.trainers"), torch.no_grad():
        for _ in range(2):
            trainer.compute_loss(trainer.model, batch)
    hook.remove()
    assert all(kw["attention_mask"] is not None and "position_ids" not in kw for kw in seen)
    logged = [r.getMessage() for r in caplog.records if "padded, not packed" in r.getMessage()]
    assert logged == [f"AOT batches are padded, not packed (aot_padding_free): {problem}"]


def test_packing_problem_names_what_is_missing(tiny_model):
    model = load(tiny_model)
    assert packing.packing_problem(model) is None

    class NoPositions(torch.nn.Module):
        config = model.config

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return input_ids

    assert packing.packing_problem(NoPositions()) == "NoPositions.forward takes no position_ids"
    # FSDP2's fully_shard swaps in a subclass defined in torch: the model's own module still decides.
    sharded = type(f"FSDP{type(model).__name__}", (FSDPModule, type(model)), {})
    assert sharded.__module__ != type(model).__module__
    assert packing.class_problem(sharded, "sdpa") is None
