"""Mixture-of-Experts models: the router load-balancing loss and TRL's metrics, as TRL's trainers add them.

TRL's DPO and KTO ``_compute_loss`` add ``router_aux_loss_coef * outputs.aux_loss`` for a model whose
config has ``output_router_logits`` and log it as ``aux_loss``. The AOT trainers replace that method,
so they must add it too, through the chunked log-probs (the router logits of the backbone) as well
as the full logits, and in the step scope only in the gradient pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from axolotl_runs import log_history, make_config, train
from trainer_setup import BETA, load, paired_trainer, run_step, step_trainer, unpaired_trainer
from trl import DPOTrainer
from trl.trainer.utils import selective_log_softmax

from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.trainers import AOTPairedTrainer
from axolotl_aot.ot.losses import aot_paired_loss, aot_unpaired_loss
from axolotl_aot.tools.tiny_model import build_tiny_model

TRL_METRICS = ("logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected", "entropy")
TRL_METRICS += ("mean_token_accuracy", "num_tokens")


@pytest.fixture(scope="module", params=["llama", "mixtral", "qwen3_moe"])
def family_models(request, tmp_path_factory) -> tuple[str, tuple[Path, Path]]:
    """A policy and a different reference of one family (a dense Llama as the control)."""
    folder = tmp_path_factory.mktemp(request.param)
    policy = build_tiny_model(folder / "policy", family=request.param)
    return request.param, (policy, build_tiny_model(folder / "reference", family=request.param, seed=1))


def loss_and_grads(trainer, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    trainer.model.train()
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in trainer.model.parameters()])


def full_logps(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The oracle: the model's own forward (logits and aux_loss) and TRL's per-token log-softmax."""
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        output_router_logits=True,
        use_cache=False,
    )
    per_token = selective_log_softmax(out.logits[:, :-1], batch["input_ids"][:, 1:])
    return per_token.masked_fill(batch["completion_mask"][:, 1:] == 0, 0.0).sum(-1), out.aux_loss


@pytest.mark.parametrize("chunk", [256, 0], ids=["chunked", "full-logits"])
def test_paired_loss_gradients_and_metrics_equal_trl(family_models, tmp_path, chunk):
    family, models = family_models
    settings = AOTArgs(aot_sort_scope="local", aot_logits_chunk_size=chunk)
    ours = paired_trainer(AOTPairedTrainer, models, tmp_path / "ours", settings)
    trl = paired_trainer(DPOTrainer, models, tmp_path / "trl", loss_type=["aot"])
    assert ours.aux_loss_enabled == trl.aux_loss_enabled == (family != "llama")
    batch = next(iter(trl.get_train_dataloader()))
    (loss, grads), (trl_loss, trl_grads) = loss_and_grads(ours, batch), loss_and_grads(trl, batch)

    torch.testing.assert_close(loss, trl_loss, rtol=0, atol=1e-5)
    torch.testing.assert_close(grads, trl_grads, rtol=1e-4, atol=1e-6)
    logged, trl_logged = ours._metrics["train"], trl._metrics["train"]
    for key in (*TRL_METRICS, "aux_loss") if ours.aux_loss_enabled else TRL_METRICS:
        assert logged[key] == pytest.approx(trl_logged[key], rel=1e-5, abs=1e-6), key
    if ours.aux_loss_enabled:  # the term is really there: ~2 for 4 experts, top-2, weighted by 0.001
        aux = logged["aux_loss"][0]
        assert aux > 1.0
        with torch.no_grad():
            chosen, rejected = ours.forward_rows(ours.model, batch).columns[:2]
            reference = ours.compute_ref_log_probs(ours.ref_model, batch)
        aot = aot_paired_loss(chosen, rejected, *reference, beta=BETA)
        assert loss.item() == pytest.approx(aot.item() + ours.router_aux_loss_coef * aux, abs=1e-6)
    else:
        assert "aux_loss" not in logged


def moe_models(family_models) -> tuple[Path, Path]:
    family, models = family_models
    if family == "llama":
        pytest.skip("a dense model has no router loss (its parity with TRL is the test above)")
    return models


def test_router_aux_loss_coef_zero_turns_the_term_off(family_models, tmp_path):
    models = moe_models(family_models)
    local = AOTArgs(aot_sort_scope="local")
    ours = paired_trainer(AOTPairedTrainer, models, tmp_path / "ours", local, router_aux_loss_coef=0.0)
    trl = paired_trainer(DPOTrainer, models, tmp_path / "trl", loss_type=["aot"], router_aux_loss_coef=0.0)
    weighted = paired_trainer(AOTPairedTrainer, models, tmp_path / "weighted", local)
    batch = next(iter(trl.get_train_dataloader()))
    loss, trl_loss = loss_and_grads(ours, batch)[0], loss_and_grads(trl, batch)[0]
    assert not ours.aux_loss_enabled and "aux_loss" not in ours._metrics["train"]
    torch.testing.assert_close(loss, trl_loss, rtol=0, atol=1e-5)
    assert loss_and_grads(weighted, batch)[0].item() - loss.item() > 1e-3  # 0.001 x ~2


def test_unpaired_adds_the_router_loss_of_its_batch(family_models, tmp_path):
    models = moe_models(family_models)
    trainer = unpaired_trainer(models, tmp_path, AOTArgs(aot_sort_scope="local"))
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    loss = loss_and_grads(trainer, batch)[0]
    with torch.no_grad():
        logps, aux = full_logps(trainer.model, batch)
        reference = full_logps(trainer.ref_model.train(False), batch)[0]
    labels = torch.as_tensor(batch["label"]).bool()
    rewards = logps - reference
    expected = aot_unpaired_loss(rewards[labels], rewards[~labels], beta=BETA) + 0.001 * aux
    assert trainer.router_aux_loss_coef == pytest.approx(0.001)
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-5)
    assert trainer._metrics["train"]["aux_loss"] == [pytest.approx(aux.item(), abs=1e-6)]
    assert trainer._metrics["train"]["logps/chosen"] == [pytest.approx(logps[labels].mean().item(), abs=1e-5)]


def test_step_scope_adds_the_router_loss_in_the_gradient_pass_only(family_models, tmp_path):
    """Two micro-batches of 4 pairs: the gradient is that of the step's AOT loss (one coupling of all
    8 pairs) plus the router loss of each micro-batch, averaged as the Trainer averages losses."""
    models = moe_models(family_models)
    trainer = step_trainer(models, tmp_path, "step", batch=4, accumulation=2)
    rows = [trainer.train_dataset[i] for i in range(8)]
    micro_batches = [trainer.data_collator(rows[:4]), trainer.data_collator(rows[4:])]
    logged, grads = run_step(trainer, micro_batches)

    oracle = load(models[0]).train()
    parts = [full_logps(oracle, batch) for batch in micro_batches]
    with torch.no_grad():
        references = [full_logps(trainer.ref_model, batch)[0] for batch in micro_batches]
    chosen, rejected = zip(*(logps.chunk(2) for logps, _ in parts), strict=True)
    ref_chosen, ref_rejected = zip(*(ref.chunk(2) for ref in references), strict=True)
    aot = aot_paired_loss(
        *(torch.cat(x) for x in (chosen, rejected, ref_chosen, ref_rejected)), beta=BETA, cost="squared_hinge"
    )
    aux = torch.stack([aux for _, aux in parts])
    (aot + 0.001 * aux.mean()).backward()
    expected = torch.cat([p.grad.flatten() for p in oracle.parameters()])

    torch.testing.assert_close(grads, expected, rtol=1e-4, atol=1e-6)
    assert logged == pytest.approx(aot.item() + 0.001 * aux.mean().item(), abs=1e-5)
    # Logged once per step from the scoring pass: the router loss of each micro-batch.
    assert trainer._metrics["train"]["aux_loss"] == pytest.approx(aux.tolist(), abs=1e-6)
    assert trainer._metrics["train"]["aot/sort_size"] == [8.0]


@pytest.mark.training
def test_logged_losses_equal_trl_through_the_entry_point(tmp_path):
    """A tiny Mixtral, 3 AdamW steps through ``python -m axolotl.cli.train``: ``rl: aot`` with the
    local scope logs TRL's ``rl: dpo`` + ``dpo_loss_type: [aot]`` loss, aux_loss and metrics."""
    mixtral = build_tiny_model(tmp_path / "mixtral", family="mixtral")
    runs = {
        "aot": {"aot_sort_scope": "local"},
        "trl": {
            "rl": "dpo",
            "dpo_loss_type": ["aot"],
            "plugins": None,
            "aot_cost": None,
            "aot_sort_scope": None,
        },
        "off": {"aot_sort_scope": "local", "router_aux_loss_coef": 0.0, "max_steps": 1},
    }
    logged = {}
    for name, changes in runs.items():
        (tmp_path / name).mkdir()
        changes = {"max_steps": 3, **changes}
        config = make_config(tmp_path / name, "paired", mixtral, micro_batch_size=8, **changes)
        done = train(config)
        assert done.returncode == 0, done.stderr[-4000:]
        logged[name] = [entry for entry in log_history(tmp_path / name / "out") if "loss" in entry]
    assert len(logged["aot"]) == len(logged["trl"]) == 3
    for ours, trl in zip(logged["aot"], logged["trl"], strict=True):
        for key in ("loss", "aux_loss", *TRL_METRICS):
            assert ours[key] == pytest.approx(trl[key], rel=1e-5, abs=1e-5), (key, ours[key], trl[key])
        assert ours["aux_loss"] > 1.0
    # The plugin's router_aux_loss_coef reaches TRL's config (axolotl passes no such key): 0 turns it off.
    (off,) = logged["off"]
    first = logged["aot"][0]
    assert "aux_loss" not in off
    assert off["loss"] == pytest.approx(first["loss"] - 0.001 * first["aux_loss"], abs=1e-5)
