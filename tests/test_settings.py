"""No silently dropped setting: every axolotl key that reaches TRL's DPO/KTO trainers is, under
rl: aot / rl: aot_unpaired, honoured, refused when the config loads, or warned about once.

``settings.SETTINGS`` is the table, ``settings.setting_problems`` its reader, docs/settings.md its user copy.
Config level throughout (axolotl's own ``validate_config`` / ``load_cfg`` / trainer-argument builder),
plus one 2-step training run.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import pytest
import yaml
from axolotl_runs import LORA, ROOT, log_history, make_config, tiny_config, train
from pydantic import ValidationError
from typer.testing import CliRunner

from axolotl_aot.integration.plugin import AOTPlugin
from axolotl_aot.integration.settings import (
    GRPO_TRL_FIELDS,
    INCOMPATIBLE,
    SETTINGS,
    TRL_OTHER,
    setting_problems,
)
from axolotl_aot.tools.config import load_and_validate
from axolotl_aot_cli.app import app

MODES = ("paired", "unpaired")
RL = {"paired": "aot", "unpaired": "aot_unpaired"}
LOGGER = "axolotl_aot.integration.plugin"  # AOTPlugin.register logs the warned keys


@pytest.fixture(scope="module", autouse=True)
def _axolotl_logging() -> None:
    """axolotl's logging configuration, installed before caplog's handler: installing it replaces the
    root logger's handlers, so the first config load in a process would otherwise log past caplog."""
    from axolotl_aot.integration import compat

    compat.configure_logging()


def _nested(key: str, value: object) -> dict:
    """The config change setting ``key`` ("name" or "trl.name") to ``value``."""
    section, _, name = key.rpartition(".")
    return {section: {name: value}} if section else {name: value}


# A value that counts as set for every refused key (SETTINGS.when), valid for axolotl's own schema.
REFUSED_VALUES: dict[str, object] = {
    **dict.fromkeys(INCOMPATIBLE, True),
    "dpo_loss_type": ["sigmoid"],
    "dpo_loss_weights": [1.0],
    "dpo_label_smoothing": 0.1,
    "kto_desirable_weight": 2.0,
    "kto_undesirable_weight": 2.0,
    "context_parallel_size": 2,
    "dpo_ld_alpha": 0.0,  # falsy, and still LD-DPO
    "orpo_alpha": 0.1,
    "simpo_gamma": 0.5,
    "cpo_alpha": 1.0,
    "beta": 0.1,
    "max_prompt_len": 512,
    "pad_to_multiple_of": 8,
    "processor_type": "AutoProcessor",
    "image_size": 224,
    "image_resize_algorithm": "bilinear",
    "trl.max_completion_length": 256,
    "trl.loss_type": "dapo",
    "trl.sync_ref_model": True,
    "trl.router_aux_loss_coef": 0.0,
}
WARNED_VALUES: dict[str, object] = {
    "lora_dropout": 0.05,
    "neftune_noise_alpha": 5.0,
    "noisy_embedding_alpha": 5.0,
    "truncation_mode": "keep_end",
    "padding_value": 0,
    "use_logits_to_keep": True,
    "disable_dropout": False,
    "rl_adapter_ref_model": True,
    "eval_on_start": False,
    "pad_to_multiple_of": 8,  # unpaired only
    "group_by_length": True,
    "curriculum_sampling": True,
    "lr_quadratic_warmup": True,
    "dataloader_drop_last": True,
    "auto_find_batch_size": True,
    "ddp_bucket_cap_mb": 50,
    "ddp_broadcast_buffers": False,
    "loss_watchdog_threshold": 5.0,
    "train_on_inputs": True,
    "pad_to_sequence_len": True,
    "chunked_cross_entropy": True,
    "liger_cross_entropy": True,
    "liger_fused_linear_cross_entropy": True,
    "liger_use_token_scaling": True,
    "trl.ref_model_mixup_alpha": 0.6,
    "trl.ref_model_sync_steps": 512,
    "trl.use_vllm": True,
    "trl.num_generations": 4,
    "trl.temperature": 0.7,
    "trl.reward_funcs": ["my_rewards.fn"],
    "trl.my_typo": 1,  # no TRLConfig field: trl.*
}


def _cases(kind: str, values: dict[str, object]) -> list:
    return [
        pytest.param(key, mode, id=f"{key}-{mode}")
        for key in values
        for mode in MODES
        if SETTINGS.get(key, SETTINGS[TRL_OTHER]).kind(mode) == kind
    ]


def _schema_has(field: str) -> bool:
    from axolotl.utils.schemas.config import AxolotlInputConfig

    return field in AxolotlInputConfig.model_fields


# (a) refused -----------------------------------------------------------------------------------------


def test_every_refused_key_has_a_test_value():
    refused = {key for key, s in SETTINGS.items() if "refused" in (s.kind("paired"), s.kind("unpaired"))}
    assert refused == set(REFUSED_VALUES)


@pytest.mark.parametrize(("key", "mode"), _cases("refused", REFUSED_VALUES))
def test_a_refused_key_fails_the_config_naming_key_reason_and_fix(tmp_path, key, mode):
    setting = SETTINGS[key]
    with pytest.raises(ValidationError) as error:
        load_and_validate(tiny_config(tmp_path, mode, **_nested(key, REFUSED_VALUES[key])))
    message = str(error.value)
    assert (
        f"{key}: {REFUSED_VALUES[key]!r} cannot be used with rl: {RL[mode]}: {setting.why(mode)}." in message
    )
    assert (setting.fix or f"Remove {key}.") in message


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("changes", "key", "text"),
    [
        ({"rl_beta": -0.1}, "rl_beta", "rl_beta must be a finite number > 0 for rl: {rl}; got -0.1"),
        ({"rl_beta": float("inf")}, "rl_beta", "rl_beta must be a finite number > 0 for rl: {rl}; got inf"),
        ({"trl": {"beta": -1.0}}, "trl.beta", "trl.beta must be a finite number > 0 for rl: {rl}; got -1.0"),
        ({"trl": {"beta": 0}}, "trl.beta", "trl.beta must be a finite number > 0 for rl: {rl}; got 0"),
        ({"trl": {"beta": float("nan")}}, "trl.beta", "trl.beta must be a finite number > 0 for rl: {rl}"),
        ({"rl_beta": None, "dpo_beta": 0.0}, "dpo_beta", "dpo_beta must be a finite number > 0"),
        (
            {"rl_beta": 0.1, "trl": {"beta": 0.2}},
            "rl_beta",
            "rl_beta: 0.1 cannot be used with trl.beta: 0.2 for rl: {rl}: axolotl passes trl.beta to TRL "
            "and drops rl_beta, so the run would train with beta 0.2. Set the beta in one place (rl_beta).",
        ),
        (
            {"rl_beta": 0.1, "dpo_beta": 0.3},
            "dpo_beta",
            "dpo_beta: 0.3 cannot be used with rl_beta: 0.1 for rl: {rl}: axolotl passes rl_beta to TRL",
        ),
        (
            {"rl_beta": None, "dpo_beta": 0.3, "trl": {"beta": 0.2}},
            "dpo_beta",
            "dpo_beta: 0.3 cannot be used with trl.beta: 0.2",
        ),
    ],
)
def test_a_bad_or_conflicting_beta_fails_the_config(tmp_path, mode, changes, key, text):
    with pytest.raises(ValidationError) as error:
        load_and_validate(tiny_config(tmp_path, mode, **changes))
    assert text.format(rl=RL[mode]) in str(error.value)
    assert setting_problems({"rl": RL[mode], **changes})[0].key == key


@pytest.mark.parametrize("mode", MODES)
def test_equal_betas_in_two_places_are_accepted(tmp_path, mode):
    cfg = load_and_validate(tiny_config(tmp_path, mode, rl_beta=0.2, trl={"beta": 0.2}))
    assert cfg.rl_beta == 0.2 and cfg.trl.beta == 0.2


@pytest.mark.parametrize("mode", MODES)
def test_aot_cli_validate_reports_every_refused_key_at_once(tmp_path, mode, tiny_model):
    refused = {k: v for k, v in REFUSED_VALUES.items() if SETTINGS[k].kind(mode) == "refused"}
    top = {k: v for k, v in refused.items() if not k.startswith("trl.")}
    trl = {k[4:]: v for k, v in refused.items() if k.startswith("trl.")}
    path = tiny_config(tmp_path, mode, **top, trl={**trl, "beta": -1.0}, base_model=str(tiny_model))
    result = CliRunner().invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 1
    found = json.loads(result.stdout)[0]["problems"]
    errors = {p["key"] for p in found if p["severity"] == "error"}
    # Training stops at the first refused key: axolotl's validation error, reported under key "" as
    # any other; aot-cli validate adds every other refused key under its own key.
    first = setting_problems(yaml.safe_load(path.read_text()))[0]
    assert {*refused, "trl.beta"} - errors <= {first.key}
    assert first.key in errors or first.message in {p["message"] for p in found if p["key"] == ""}
    assert not [p for p in found if p["message"].startswith("unknown key")]  # beta: its own message


# (b) warned -------------------------------------------------------------------------------------------


SETTINGS_GRPO = {f"trl.{name}" for name in GRPO_TRL_FIELDS} | {TRL_OTHER}


def test_every_warned_key_has_a_test_value():
    warned = {key for key, s in SETTINGS.items() if "warned" in (s.kind("paired"), s.kind("unpaired"))}
    assert warned - SETTINGS_GRPO <= set(WARNED_VALUES)


@pytest.mark.parametrize(("key", "mode"), _cases("warned", WARNED_VALUES))
def test_a_warned_key_validates_and_is_logged_once_naming_it(tmp_path, caplog, key, mode):
    adapter = {**LORA, "lora_dropout": 0.05} if key == "lora_dropout" else {}
    path = tiny_config(tmp_path, mode, **{**adapter, **_nested(key, WARNED_VALUES[key])})
    dropped_on_this_stack = key != "eval_on_start" or not _schema_has("eval_on_start")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_and_validate(path)  # one config load: each warning once
    logged = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    prefix = f"axolotl-aot: {key}: {WARNED_VALUES[key]!r} has no effect with rl: {RL[mode]}: "
    expected = [m for m in logged if m.startswith(prefix)]
    if dropped_on_this_stack:
        assert len(expected) == 1, logged
        why = SETTINGS.get(key, SETTINGS[TRL_OTHER]).why(mode)
        assert why in expected[0]
    else:  # axolotl 0.21 reads eval_on_start (the plugin's start_eval_args handles it)
        assert expected == []


@pytest.mark.parametrize("mode", MODES)
def test_aot_cli_validate_reports_every_warned_key(tmp_path, mode, tiny_model):
    warned = {
        k: v for k, v in WARNED_VALUES.items() if SETTINGS.get(k, SETTINGS[TRL_OTHER]).kind(mode) == "warned"
    }
    warned.pop("noisy_embedding_alpha")  # axolotl refuses it together with neftune_noise_alpha
    for key in ("chunked_cross_entropy", "liger_cross_entropy"):  # one cross-entropy kernel at a time
        warned.pop(key)
    top = {k: v for k, v in warned.items() if not k.startswith("trl.")}
    trl = {k[4:]: v for k, v in warned.items() if k.startswith("trl.")}
    changes = {**LORA, **top, "trl": trl, "base_model": str(tiny_model)}
    result = CliRunner().invoke(app, ["validate", str(tiny_config(tmp_path, mode, **changes)), "--json"])
    assert result.exit_code == 0, result.stdout
    found = json.loads(result.stdout)[0]["problems"]
    keys = {p["key"] for p in found if p["severity"] == "warning" and "has no effect" in p["message"]}
    expected = set(warned) - ({"eval_on_start"} if _schema_has("eval_on_start") else set())
    assert keys == expected
    # the keys axolotl drops get this message, not "unknown key ...: axolotl ignores it"
    assert not [p for p in found if p["message"].startswith("unknown key")]


def test_every_grpo_field_and_unknown_trl_key_is_warned_not_refused():
    data = {"rl": "aot", "trl": dict.fromkeys([*GRPO_TRL_FIELDS, "not_a_field"], 1)}
    found = {p.key: p for p in setting_problems(data)}
    assert set(found) == {f"trl.{name}" for name in [*GRPO_TRL_FIELDS, "not_a_field"]}
    assert {p.kind for p in found.values()} == {"warned"}
    assert "not a field of axolotl's trl: section" in found["trl.not_a_field"].message


def test_a_value_that_counts_as_unset_has_no_problem():
    data = {
        "rl": "aot",
        "lora_dropout": 0.0,
        "pad_to_multiple_of": 0,
        "context_parallel_size": 1,
        "sample_packing": False,
        "trl": {"sync_ref_model": False, "beta": 0.1},
        "rl_beta": 0.1,
    }
    assert setting_problems(data) == []
    assert setting_problems({"rl": "dpo", "max_prompt_len": 512}) == []  # not an AOT config


# (c) honoured: the values reach TRL's config --------------------------------------------------------


def _training_args(path: Path, eval_rows: int = 0):
    """TRL's config as axolotl's RL trainer builder makes it from the YAML at ``path`` (with an
    evaluation set of ``eval_rows`` rows, if any)."""
    from axolotl.cli.config import load_cfg
    from axolotl.core.builders import HFRLTrainerBuilder
    from datasets import Dataset

    cfg = load_cfg(str(path))
    builder = HFRLTrainerBuilder(cfg, None, None)
    if eval_rows:
        builder.eval_dataset = Dataset.from_dict({"prompt": ["p"] * eval_rows})
    training_args, _ = builder._build_training_arguments(10)
    return cfg, training_args


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("changes", "rl_beta", "beta"),
    [
        ({"rl_beta": None}, 0.01, 0.01),  # the paper's default
        ({"rl_beta": 0.05}, 0.05, 0.05),
        ({"rl_beta": None, "dpo_beta": 0.5}, 0.5, 0.5),  # as rl: dpo, not the plugin's 0.01
        ({"rl_beta": None, "trl": {"beta": 0.2}}, None, 0.2),
        ({"rl_beta": 0.2, "trl": {"beta": 0.2}}, 0.2, 0.2),
    ],
    ids=["default", "rl_beta", "dpo_beta", "trl.beta", "both-equal"],
)
def test_the_beta_reaches_trls_config(tmp_path, tiny_model, mode, changes, rl_beta, beta):
    cfg, training_args = _training_args(tiny_config(tmp_path, mode, base_model=str(tiny_model), **changes))
    assert cfg.rl_beta == rl_beta
    assert training_args.beta == beta


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("value", [True, False, None])
def test_precompute_ref_log_probs_reaches_trls_config_for_both_modes(tmp_path, tiny_model, mode, value):
    path = tiny_config(tmp_path, mode, base_model=str(tiny_model), precompute_ref_log_probs=value)
    _, training_args = _training_args(path)
    assert type(training_args).__name__ == ("AxolotlDPOConfig" if mode == "paired" else "AxolotlKTOConfig")
    assert training_args.precompute_ref_log_probs is bool(value)


@pytest.mark.parametrize("mode", MODES)
def test_router_aux_loss_coef_reaches_trls_config(tmp_path, tiny_model, mode):
    path = tiny_config(tmp_path, mode, base_model=str(tiny_model), router_aux_loss_coef=0.0)
    _, training_args = _training_args(path)
    assert training_args.router_aux_loss_coef == 0.0


@pytest.mark.parametrize(
    ("changes", "rl_beta"),
    [({}, 0.01), ({"rl_beta": 0.3}, 0.3), ({"dpo_beta": 0.3}, None), ({"trl": {"beta": 0}}, None)],
)
def test_register_defaults_the_beta_only_when_none_is_set(changes, rl_beta):
    cfg = {"rl": "aot", **changes}
    AOTPlugin().register(cfg)
    assert cfg.get("rl_beta") == rl_beta


@pytest.mark.training
def test_an_unpaired_run_with_precomputed_reference_trains_and_warns_once(tmp_path, tiny_model):
    """The one training run: rl: aot_unpaired + precompute_ref_log_probs (which axolotl passes for
    rl: dpo only) precomputes through TRL's KTO constructor and trains; a warned key is logged once."""
    config = make_config(
        tmp_path, "unpaired", tiny_model, max_steps=2, precompute_ref_log_probs=True, neftune_noise_alpha=5.0
    )
    done = train(config)
    output = done.stdout + done.stderr
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Computing reference log probs for train dataset" in output
    assert output.count("neftune_noise_alpha: 5.0 has no effect with rl: aot_unpaired") == 1
    logs = [entry for entry in log_history(tmp_path / "out") if "loss" in entry]
    assert len(logs) == 2 and all(math.isfinite(entry["loss"]) for entry in logs)


# docs/settings.md is the table ------------------------------------------------------------------------


def _docs_table() -> dict[str, tuple[str, str, str]]:
    """{key: (rl: aot class, rl: aot_unpaired class, stacks)} of docs/settings.md's marked tables."""
    text = (ROOT / "docs/settings.md").read_text()
    table = text.split("<!-- settings:begin -->")[1].split("<!-- settings:end -->")[0]
    rows: dict[str, tuple[str, str, str]] = {}
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 5, line
        classes = [re.match(r"\*\*(\w+)\*\*", cell) for cell in cells[2:4]]
        assert all(classes), line
        for key in re.findall(r"`([^`]+)`", cells[0]):
            assert key not in rows, key
            rows[key] = (classes[0].group(1), classes[1].group(1), cells[4])
    return rows


def test_the_docs_table_lists_exactly_the_known_keys_with_their_classes():
    expected = {key: (s.kind("paired"), s.kind("unpaired"), s.stacks) for key, s in SETTINGS.items()}
    assert _docs_table() == expected


def test_the_grpo_field_list_is_axolotls_trl_section():
    from axolotl.utils.schemas.trl import TRLConfig

    trl_keys = {key for key in SETTINGS if key.startswith("trl.")}
    assert trl_keys == {f"trl.{name}" for name in TRLConfig.model_fields} | {
        "trl.router_aux_loss_coef",
        TRL_OTHER,
    }


# (d) settings that do not mix with a sharded engine ---------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "changes", "key", "text"),
    [
        ("paired", {"precompute_ref_log_probs": True}, "precompute_ref_log_probs", "TRL issue #6470"),
        (
            "unpaired",
            {"precompute_ref_log_probs": True},
            "precompute_ref_log_probs",
            "the other ranks look for the file next to theirs",
        ),
        ("paired", {"adapter": "qlora", "load_in_4bit": True}, "load_in_4bit", "QLoRA with DeepSpeed"),
    ],
)
def test_settings_that_do_not_mix_with_fsdp2_fail_the_config_and_validate(tmp_path, mode, changes, key, text):
    fsdp2 = {"fsdp_version": 2, "fsdp_config": {"transformer_layer_cls_to_wrap": "LlamaDecoderLayer"}}
    path = tiny_config(tmp_path, mode, **fsdp2, **changes)
    with pytest.raises(ValidationError) as error:
        load_and_validate(path)
    assert "fsdp_version: 2" in str(error.value)
    result = CliRunner().invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 1
    found = [p for p in json.loads(result.stdout)[0]["problems"] if p["severity"] == "error"]
    assert any(text in p["message"] and "fsdp_version: 2" in p["message"] for p in found), found
    assert setting_problems(yaml.safe_load(path.read_text()))[0].key == key
    assert not setting_problems(
        {**yaml.safe_load(path.read_text()), "fsdp_version": None, "fsdp_config": None}
    )


def test_fsdp1_is_warned_for_its_full_logits():
    (problem,) = setting_problems({"rl": "aot", "fsdp_config": {"reshard_after_forward": True}})
    assert (problem.key, problem.kind) == ("fsdp_version", "warned")
    assert "full [tokens, vocab] logits" in problem.message


@pytest.mark.parametrize("mode", MODES)
def test_early_stopping_without_an_evaluation_set_fails_the_config(tmp_path, mode):
    with pytest.raises(ValidationError) as error:
        load_and_validate(tiny_config(tmp_path, mode, early_stopping_patience=2, test_datasets=None))
    assert (
        f"early_stopping_patience: 2 cannot be used with rl: {RL[mode]} without an evaluation set "
        "(test_datasets or val_set_size)"
    ) in str(error.value)


@pytest.mark.parametrize(
    ("changes", "metric", "greater"),
    [({}, "eval_loss", False), ({"metric_for_best_model": "eval_aot/win_rate"}, "eval_aot/win_rate", True)],
)
def test_early_stopping_keeps_the_best_checkpoint_by_its_metric(
    tmp_path, tiny_model, changes, metric, greater
):
    path = tiny_config(tmp_path, "paired", base_model=str(tiny_model), early_stopping_patience=2, **changes)
    cfg, training_args = _training_args(path, eval_rows=4)
    assert (training_args.metric_for_best_model, training_args.greater_is_better) == (metric, greater)
    assert training_args.load_best_model_at_end is True
    (stopper,) = AOTPlugin().add_callbacks_pre_trainer(cfg, None)
    assert stopper.early_stopping_patience == 2


CCE = "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"


@pytest.mark.parametrize("mode", MODES)
def test_cut_cross_entropy_without_axolotls_fork_fails_the_config_and_with_it_is_warned(
    tmp_path, monkeypatch, mode
):
    from axolotl_aot.integration import compat

    missing = compat.cut_cross_entropy_missing()
    assert missing and "Axolotl's fork of cut_cross_entropy" in missing  # not installed on either stack
    plugins = ["axolotl_aot.AOTPlugin", CCE]
    path = tiny_config(tmp_path, mode, plugins=plugins, bf16=True)
    with pytest.raises(ValidationError) as error:
        load_and_validate(path)
    text = str(error.value)
    assert f"cut_cross_entropy: True cannot be used with rl: {RL[mode]}" in text
    assert "the AOT trainers pass no labels to the model's forward" in text
    assert f"Here training would also stop when the model loads: {missing.rstrip('.')}" in text
    assert f"Remove {CCE} from plugins, or set cut_cross_entropy: false" in text
    raw = yaml.safe_load(path.read_text())
    assert not setting_problems({**raw, "cut_cross_entropy": False})
    assert not setting_problems({**raw, "plugins": plugins[:1]})
    monkeypatch.setattr(compat, "cut_cross_entropy_missing", lambda: None)  # as with the fork installed
    ((key, kind, message),) = [(p.key, p.kind, p.message) for p in setting_problems(raw)]
    assert (key, kind) == ("cut_cross_entropy", "warned")
    assert message.startswith(f"cut_cross_entropy: True has no effect with rl: {RL[mode]}: ")
    assert setting_problems({**raw, "plugins": [CCE.replace(".CutCross", ":CutCross")]})  # 0.21's spelling
