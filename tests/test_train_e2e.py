"""The real entry points: ``python -m axolotl.cli.train`` and ``accelerate launch``, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from axolotl_runs import LORA, QLORA, ROOT, check_run, final_weights, make_config, max_difference, train
from safetensors.torch import load_file

pytestmark = pytest.mark.training


def check_adapter(out: Path, quantized: bool) -> None:
    """A trained adapter was saved, over a base that bitsandbytes loaded in 4-bit for QLoRA only."""
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # lora_B starts at zero
    saved = json.loads((out / "config.json").read_text())
    if quantized:  # the base was loaded in 4-bit by bitsandbytes (its CPU backend here)
        assert saved["quantization_config"]["load_in_4bit"] is True
        assert saved["quantization_config"]["quant_method"] == "bitsandbytes"
    else:
        assert "quantization_config" not in saved


def test_unpaired_data_with_one_label_fails_at_startup(tmp_path, tiny_model):
    positives = tmp_path / "positives.jsonl"
    rows = [json.loads(line) for line in (ROOT / "axolotl_aot/data/parity_unpaired_train.jsonl").open()]
    positives.write_text("".join(json.dumps(r) + "\n" for r in rows if r["label"]))
    config = make_config(tmp_path, "unpaired", tiny_model, max_steps=2)
    cfg = yaml.safe_load(config.read_text())
    cfg["datasets"][0]["path"] = str(positives)
    config.write_text(yaml.safe_dump(cfg))
    done = train(config)
    assert done.returncode != 0
    assert "rl: aot_unpaired needs samples of both labels" in done.stderr + done.stdout
    assert "with label=True and 0 with label=False" in done.stderr + done.stdout


def test_training_from_a_lora_model_dir_is_refused_not_trained_fresh(tmp_path, tiny_model):
    """axolotl's preference path never loads lora_model_dir for training: the plugin stops the run."""
    saved = tmp_path / "saved-adapter"
    saved.mkdir()
    done = train(make_config(tmp_path, "paired", tiny_model, max_steps=2, lora_model_dir=str(saved), **LORA))
    assert done.returncode != 0
    output = done.stderr + done.stdout
    assert f"lora_model_dir: {saved} is not loaded for training" in output
    assert "Traceback" not in output
    assert not (tmp_path / "out/checkpoint-2").exists()


@pytest.mark.parametrize(
    "settings",
    [{"precompute_ref_log_probs": True}, {**LORA, "gradient_checkpointing": True}, QLORA],
    ids=["full-precomputed-reference", "lora-gradient-checkpointing", "qlora"],
)
@pytest.mark.parametrize("mode", ["paired", "unpaired"])
def test_chunked_log_probs_log_the_losses_of_the_full_logits(tmp_path, tiny_model, mode, settings):
    """The chunked path and aot_logits_chunk_size: 0 (the model's logits) train alike, the reference
    pass included (the adapter-disabled base, or TRL's precompute in the trainer's constructor).
    SGD: Adam's first step is lr * sign(grad), which turns float rounding in near-zero gradients
    into full-size updates. The chunked precompute run goes through ``accelerate launch``; the
    chunked adapter runs save a trained LoRA or QLoRA adapter."""
    losses, fallbacks, weights = [], [], []
    for chunk in (3, 0):  # 3 does not divide the completion lengths
        run = tmp_path / str(chunk)
        run.mkdir()
        config = make_config(
            run, mode, tiny_model, max_steps=3, aot_logits_chunk_size=chunk, optimizer="sgd",
            learning_rate=1.0, **settings,
        )  # fmt: skip
        precompute = "precompute_ref_log_probs" in settings
        done = train(config, launcher="accelerate" if precompute and chunk else "python")
        losses.append([entry["loss"] for entry in check_run(done, run / "out", 3)])
        fallbacks.append("AOT log-probs use the full [tokens, vocab] logits" in done.stdout + done.stderr)
        weights.append(final_weights(run / "out"))
        if precompute:  # TRL's precompute pass ran over the training set (its progress bar), so the
            # steps read the reference log-probs from the dataset's columns, not a reference forward
            assert "reference log probs for train dataset" in done.stdout + done.stderr, done.stderr[-4000:]
        if "adapter" in settings and chunk:
            check_adapter(run / "out", quantized=settings["adapter"] == "qlora")
    assert fallbacks == [False, True]  # the chunked run never fell back; the other was told to
    assert losses[0] == pytest.approx(losses[1], abs=1e-4)
    if "adapter" in settings:  # LoRA's B matrices start at 0: their size is the update
        weights = [{k: v for k, v in w.items() if "lora_B" in k} for w in weights]
        initial = {k: torch.zeros_like(v) for k, v in weights[1].items()}
    else:
        initial = final_weights(tiny_model)
    update, difference = max_difference(weights[1], initial), max_difference(weights[0], weights[1])
    print(
        f"{mode} {sorted(settings)}: losses {losses}, max |chunked - full| {difference:.3g}, "
        f"update {update:.3g}"
    )
    assert update > 1e-3  # training moved the weights
    dtype = next(iter(weights[1].values())).dtype  # a half-precision adapter: its own rounding
    rounding = 2 * torch.finfo(dtype).eps * max(w.abs().max().item() for w in weights[1].values())
    assert difference <= max(1e-3 * update, rounding if dtype != torch.float32 else 0.0)
