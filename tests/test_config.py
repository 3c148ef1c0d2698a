"""Config time: axolotl's own validation with the plugin accepts AOT configs and rejects mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from axolotl_runs import ROOT, tiny_config
from pydantic import ValidationError

from axolotl_aot.integration.plugin import AOTPlugin
from axolotl_aot.integration.settings import INCOMPATIBLE
from axolotl_aot.tools.config import load_and_validate


@pytest.mark.parametrize(
    ("name", "mode", "base_rl", "trainer"),
    [
        ("aot.yml", "paired", "dpo", "AOTPairedTrainer"),
        ("aot_unpaired.yml", "unpaired", "kto", "AOTUnpairedTrainer"),
        ("aot_multigpu.yml", "paired", "dpo", "AOTPairedTrainer"),
        ("aot_fsdp2.yml", "paired", "dpo", "AOTPairedTrainer"),
        ("aot_zero3.yml", "paired", "dpo", "AOTPairedTrainer"),
    ],
)
def test_gpu_examples_validate_on_cpu_without_a_model(name, mode, base_rl, trainer):
    multi = name in ("aot_multigpu.yml", "aot_fsdp2.yml", "aot_zero3.yml")
    cfg = load_and_validate(ROOT / "example_yamls" / name, as_gpu=True, n_gpu=8 if multi else 1)
    assert (cfg.aot_mode, str(cfg.rl.value), cfg.trainer_cls) == (
        mode,
        base_rl,
        f"axolotl_aot.integration.trainers.{trainer}",
    )
    assert cfg.rl_beta == 0.01
    assert cfg.attn_implementation == "flash_attention_2"
    assert cfg.aot_sort_scope == "world"
    if not multi:
        assert (cfg.adapter, cfg.load_in_4bit, str(cfg.optimizer)) == ("qlora", True, "paged_adamw_32bit")
    elif name == "aot_fsdp2.yml":  # LoRA on bf16 weights: 4-bit does not mix with FSDP2 for RL
        assert (cfg.fsdp_version, cfg.adapter, bool(cfg.load_in_4bit)) == (2, "lora", False)
    else:
        assert Path(ROOT / cfg.deepspeed).is_file()
        assert (name == "aot_zero3.yml") == (cfg.adapter is None)  # ZeRO-3: full fine-tuning


@pytest.mark.parametrize("mode", ["paired", "unpaired"])
def test_tiny_configs_validate_with_defaults(tmp_path, mode):
    cfg = load_and_validate(tiny_config(tmp_path, mode, aot_cost=None, aot_sort_scope=None, rl_beta=None))
    assert cfg.aot_mode == mode
    assert (cfg.aot_cost, cfg.aot_sort_scope, cfg.aot_label_smoothing) == ("logistic", "world", 0.0)
    assert cfg.rl_beta == 0.01  # the paper's beta, not TRL's 0.1


def test_explicit_beta_is_kept(tmp_path):
    assert load_and_validate(tiny_config(tmp_path, rl_beta=0.05)).rl_beta == 0.05


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("aot_cost", "hinge", ["aot_cost", "'hinge'", "'logistic'", "'squared_hinge'", "'least_squares'"]),
        ("aot_sort_scope", "global", ["aot_sort_scope", "'global'", "'local'", "'world'"]),
        ("aot_label_smoothing", 0.7, ["aot_label_smoothing", "0.7", "less than 0.5"]),
        ("aot_label_ratio", "2:1", ["aot_label_ratio", "'2:1'", "'proportional'", "'equal'"]),
    ],
)
def test_invalid_values_name_key_value_and_allowed_values(tmp_path, key, value, expected):
    with pytest.raises(ValidationError) as error:
        load_and_validate(tiny_config(tmp_path, **{key: value}))
    for text in expected:
        assert text in str(error.value)


@pytest.mark.parametrize("key", sorted(INCOMPATIBLE))
def test_incompatible_options_are_rejected_with_the_reason(tmp_path, key):
    value = ["sigmoid"] if key == "dpo_loss_type" else [1.0] if key == "dpo_loss_weights" else True
    if key.startswith("kto_"):
        path = tiny_config(tmp_path, "unpaired", **{key: 2.0})
    else:
        path = tiny_config(tmp_path, **{key: value})
    with pytest.raises(ValidationError) as error:
        load_and_validate(path)
    assert f"{key}:" in str(error.value) and "cannot be used with rl: aot" in str(error.value)
    assert INCOMPATIBLE[key] in str(error.value)


@pytest.mark.parametrize(
    ("mode", "changes", "message"),
    [
        ("paired", {"rl_beta": -0.1}, "rl_beta must be a finite number > 0 for rl: aot; got -0.1"),
        (
            "paired",
            {"aot_cost": "squared_hinge", "aot_label_smoothing": 0.1},
            "aot_label_smoothing: 0.1 applies to aot_cost: logistic only, not 'squared_hinge'",
        ),
        ("unpaired", {"micro_batch_size": 1}, "micro_batch_size: 1 is too small for rl: aot_unpaired"),
        ("paired", {"context_parallel_size": 2}, "context_parallel_size: 2 cannot be used with rl: aot"),
    ],
)
def test_bad_combinations_fail_at_config_time(tmp_path, mode, changes, message):
    with pytest.raises(ValidationError, match=message):
        load_and_validate(tiny_config(tmp_path, mode, **changes))


def test_a_foreign_trainer_cls_conflicts(tmp_path):
    with pytest.raises(ValueError, match=r"trainer_cls: 'my\.Trainer' conflicts with rl: aot"):
        load_and_validate(tiny_config(tmp_path, trainer_cls="my.Trainer"))


@pytest.mark.parametrize(
    ("rl", "mode", "base"), [("aot", "paired", "dpo"), ("aot_unpaired", "unpaired", "kto")]
)
def test_register_rewrites_once_and_is_idempotent(rl, mode, base):
    cfg = {"rl": rl, "plugins": ["axolotl_aot.AOTPlugin"]}
    plugin = AOTPlugin()
    plugin.register(cfg)
    once = dict(cfg)
    plugin.register(cfg)
    assert cfg == once
    assert (cfg["rl"], cfg["aot_mode"], cfg["rl_beta"]) == (base, mode, 0.01)


def test_register_leaves_other_rl_modes_alone():
    cfg = {"rl": "dpo", "dpo_loss_type": ["aot"]}
    AOTPlugin().register(cfg)
    assert cfg == {"rl": "dpo", "dpo_loss_type": ["aot"]}
