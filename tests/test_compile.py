"""``torch_compile: true`` under the AOT trainers: the backbone the chunked log-probs run is compiled
(the Trainer's compiled model is bypassed by them), with the eager losses, and the config load says
what stays eager."""

from __future__ import annotations

import torch
import torch._dynamo.utils
from test_packing import large_model_rows, ragged  # noqa: F401 (autouse: rows as a large model's)
from trainer_setup import paired_trainer

from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.settings import setting_problems
from axolotl_aot.integration.trainers import AOTPairedTrainer


def test_compiled_training_runs_the_compiled_backbone_with_the_eager_losses(models, tmp_path):
    """A packed training micro-batch: inductor really compiles the backbone, and the loss and the
    gradient equal the eager trainer's."""
    results = []
    for extra in ({}, {"torch_compile": True, "torch_compile_backend": "inductor"}):
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        trainer = paired_trainer(
            AOTPairedTrainer, models, tmp_path / str(len(results)), AOTArgs(aot_sort_scope="local"), **extra
        )
        trainer.model.train()
        batch = ragged(next(iter(trainer.get_train_dataloader())), seed=1)
        # Given reference columns: one backbone compiles (the policy's), not the no-grad reference's too.
        batch["ref_chosen_logps"], batch["ref_rejected_logps"] = torch.zeros(8), torch.full((8,), -1.0)
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
        results.append((loss.detach(), grad, dict(torch._dynamo.utils.counters["stats"])))
    (loss, grad, eager_stats), (compiled_loss, compiled_grad, compiled_stats) = results
    assert not eager_stats.get("unique_graphs")
    assert compiled_stats["unique_graphs"] >= 1
    torch.testing.assert_close(compiled_loss, loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled_grad, grad, rtol=1e-4, atol=1e-6)


def test_the_config_load_says_what_torch_compile_leaves_eager():
    base = {"rl": "aot", "torch_compile": True}
    (problem,) = [p for p in setting_problems(base) if p.key == "torch_compile"]
    assert problem.kind == "warned"
    assert "compiles the model's backbone; the chunked LM head" in problem.message
    assert "aot_logits_chunk_size: 0" in problem.message
    full_logits = setting_problems({**base, "aot_logits_chunk_size": 0})
    assert not [p for p in full_logits if p.key == "torch_compile"]
