"""The step scope under a stochastic forward: the gradient pass replays its scoring pass's random state.

The step scope couples rewards scored without gradients and backpropagates each micro-batch later
(docs/method.md, "The step scope"). Its per-sample weights are the exact gradient only if the
second forward computes the same rewards: with a Mixture-of-Experts router's jitter noise or with
dropout kept on, that needs the random state replayed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from trainer_setup import BETA, load, run_step, step_trainer
from trl.trainer.utils import selective_log_softmax

from axolotl_aot.integration import scopes
from axolotl_aot.integration.rng import RandomState
from axolotl_aot.ot.losses import aot_paired_loss
from axolotl_aot.tools.tiny_model import build_tiny_model

STOCHASTIC = {
    "router jitter": ({"family": "mixtral", "router_jitter_noise": 0.1}, {}),
    "dropout kept on": ({"attention_dropout": 0.3}, {"disable_dropout": False}),
}


@pytest.fixture(scope="module", params=list(STOCHASTIC))
def stochastic(request, tmp_path_factory) -> tuple[tuple[Path, Path], dict]:
    """(policy, reference) whose training-mode forward draws random numbers, and the trainer settings."""
    model, settings = STOCHASTIC[request.param]
    folder = tmp_path_factory.mktemp("stochastic")
    models = (
        build_tiny_model(folder / "policy", **model),
        build_tiny_model(folder / "reference", seed=1, **model),
    )
    return models, settings


def recorded_step(models, tmp_path, settings: dict) -> tuple[object, list[dict], list, torch.Tensor]:
    """One step of 2 micro-batches of 4 pairs; each pass's policy log-probs, with gradients or not."""
    trainer = step_trainer(models, tmp_path, "step", batch=4, accumulation=2, **settings)
    rows = [trainer.train_dataset[i] for i in range(8)]
    micro_batches = [trainer.data_collator(rows[:4]), trainer.data_collator(rows[4:])]
    passes = []
    forward_rows = trainer.forward_rows

    def recording(model, inputs, reference=None):
        out = forward_rows(model, inputs, reference)
        passes.append((torch.is_grad_enabled(), out.policy.logps.detach().clone()))
        return out

    trainer.forward_rows = recording
    _, grads = run_step(trainer, micro_batches)
    return trainer, micro_batches, passes, grads


def oracle_gradient(models, trainer, micro_batches: list[dict], states: list[RandomState]) -> torch.Tensor:
    """The step's exact gradient: each micro-batch's forward from its scoring pass's random state,
    the model's own logits, one coupling of all 8 pairs."""
    model = load(models[0]).train()
    moe = {"output_router_logits": True} if trainer.aux_loss_enabled else {}
    logps, router = [], torch.zeros(())
    for batch, state in zip(micro_batches, states, strict=True):
        with state.replay():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **moe)
        per_token = selective_log_softmax(out.logits[:, :-1], batch["input_ids"][:, 1:])
        logps.append(per_token.masked_fill(batch["completion_mask"][:, 1:] == 0, 0.0).sum(-1))
        if moe:  # as TRL: each micro-batch's router loss, averaged over the step's micro-batches
            router = router + trainer.router_aux_loss_coef * out.aux_loss / len(micro_batches)
    chosen, rejected = zip(*(x.chunk(2) for x in logps), strict=True)
    reference = [
        torch.cat(side) for side in zip(*(micro.reference for micro in trainer.scope.plan), strict=True)
    ]
    aot = aot_paired_loss(torch.cat(chosen), torch.cat(rejected), *reference, beta=BETA, cost="squared_hinge")
    (aot + router).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_the_gradient_pass_reproduces_the_scoring_pass_bit_for_bit(stochastic, tmp_path):
    models, settings = stochastic
    trainer, micro_batches, passes, grads = recorded_step(models, tmp_path, settings)
    assert [grad for grad, _ in passes] == [False, False, True, True]  # scoring, then gradient passes
    for (_, scored), (_, replayed) in zip(passes[:2], passes[2:], strict=True):
        assert torch.equal(scored, replayed)
    expected = oracle_gradient(models, trainer, micro_batches, [micro.random for micro in trainer.scope.plan])
    torch.testing.assert_close(grads, expected, rtol=1e-4, atol=1e-6)


def test_without_the_replay_the_passes_differ_and_the_log_says_so(stochastic, tmp_path, monkeypatch):
    """The control: the same step with the replay turned off draws other random numbers."""
    models, settings = stochastic
    warnings = []
    monkeypatch.setattr(RandomState, "replay", lambda self: contextlib.nullcontext())
    monkeypatch.setattr(scopes.LOG, "warning", lambda message, *args: warnings.append(message % args))
    trainer, micro_batches, passes, grads = recorded_step(models, tmp_path, settings)
    assert not torch.equal(passes[0][1], passes[2][1])
    assert len(warnings) == 1 and "aot_sort_scope: step" in warnings[0] and "scoring pass" in warnings[0]
    # A forward that started from another state gave the gradient of other rewards.
    monkeypatch.undo()
    expected = oracle_gradient(models, trainer, micro_batches, [micro.random for micro in trainer.scope.plan])
    assert (grads - expected).abs().max() > 1e-5


def test_a_deterministic_forward_trains_the_same_with_and_without_the_replay(
    tmp_path, tiny_model, monkeypatch
):
    """With dropout off (TRL's default), the replay changes nothing: the same gradient to the bit."""
    models = (tiny_model, build_tiny_model(tmp_path / "reference", seed=1))
    _, _, passes, replayed = recorded_step(models, tmp_path / "replay", {})
    monkeypatch.setattr(RandomState, "replay", lambda self: contextlib.nullcontext())
    _, _, _, plain = recorded_step(models, tmp_path / "plain", {})
    assert torch.equal(passes[0][1], passes[2][1])
    assert torch.equal(replayed, plain)
