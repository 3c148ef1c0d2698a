"""aot-cli validate: each mistake reported with its key path and exit code (Typer and the executable)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from axolotl_runs import ROOT, problems, tiny_config
from typer.testing import CliRunner

from axolotl_aot_cli.app import app

runner = CliRunner()


@pytest.fixture
def tiny(tiny_model: Path) -> Callable[..., Path]:
    """``tiny_config`` training the tiny model built for the session (its tokenizer renders chat types)."""
    return functools.partial(tiny_config, base_model=str(tiny_model))


@pytest.mark.parametrize("mode", ["paired", "unpaired"])
def test_tiny_configs_pass_with_no_problem(tmp_path, mode, tiny):
    assert problems(tiny(tmp_path, mode)) == (0, [])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attn_implementation": "flash_attention_2"}, None),
        ({"attn_implementation": "eager"}, None),
        (
            {"attn_implementation": "flex_attention"},
            "micro-batches padded: attention implementation 'flex_attention' is not one that separates "
            "packed sequences (one of eager, flash_attention_2, flash_attention_3, sdpa)",
        ),
        ({"attn_implementation": "flex_attention", "aot_padding_free": False}, None),
        (
            {"base_model": "org/not-in-the-cache"},
            "micro-batches packed unless the model cannot take packed rows (decided when it loads: the "
            "model's config is not readable here (OSError))",
        ),
    ],
)
def test_validate_says_whether_the_micro_batches_are_packed(tmp_path, tiny, change, message):
    """Silence when packed (the default) or padded on request; the reason when the model must be padded."""
    code, found = problems(tiny(tmp_path, **change), "--gpu")
    said = [p["message"] for p in found if p["key"] == "aot_padding_free"]
    assert code == 0 and said == ([message] if message else []), found


def test_gpu_examples_pass_and_hub_data_is_reported_unchecked():
    examples = sorted((ROOT / "example_yamls").glob("aot*.yml"))
    assert len(examples) == 5  # 1 GPU paired and unpaired, DeepSpeed ZeRO-2, FSDP2, ZeRO-3
    result = runner.invoke(app, ["validate", *map(str, examples), "--gpu"])
    assert result.exit_code == 0, result.output
    assert result.output.count(": OK") == len(examples)
    assert "a hub dataset, not checked (offline)" in " ".join(result.output.split())


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("rl: aot\nplugins: [axolotl_aot.AOTPlugin]\nbase_model: x\n  oops: [\n")
    code, found = problems(path)
    assert code == 1
    assert found == [{"severity": "error", "key": "", "message": found[0]["message"]}]
    assert found[0]["message"].startswith("YAML syntax error at line 4, column 7")


@pytest.mark.parametrize(
    ("changes", "key", "text"),
    [
        ({"aot_cost": "hinge"}, "aot_cost", "Input should be 'logistic', 'squared_hinge' or 'least_squares'"),
        ({"sample_packing": True}, "", "sample_packing: True cannot be used with rl: aot"),
        (
            {
                "datasets": [
                    {"path": "axolotl_aot/data/parity_unpaired_train.jsonl", "type": "chatml.argilla"}
                ]
            },
            "datasets[0].type",
            "'chatml.argilla' is an unpaired (KTO) dataset type; rl: aot needs a DPO type",
        ),
        (
            {"datasets": [{"path": "nowhere/train.jsonl", "type": "chatml.prompt_pairs"}]},
            "datasets[0].path",
            "nowhere/train.jsonl: no such file or folder",
        ),
    ],
)
def test_errors_name_the_key(tmp_path, changes, key, text, tiny):
    code, found = problems(tiny(tmp_path, **changes))
    assert code == 1
    assert any(p["severity"] == "error" and p["key"] == key and text in p["message"] for p in found), found


def test_unpaired_mode_with_a_paired_type_and_columns(tmp_path, tiny):
    paired_type = [
        {"path": str(ROOT / "axolotl_aot/data/parity_paired_train.jsonl"), "type": "chat_template.default"}
    ]
    code, found = problems(tiny(tmp_path, "unpaired", datasets=paired_type))
    assert code == 1
    assert "'chat_template.default' is a paired (DPO) dataset type; rl: aot_unpaired needs a KTO type" in str(
        found
    )
    paired_file = [
        {"path": str(ROOT / "axolotl_aot/data/parity_paired_train.jsonl"), "type": "chatml.prompt_pairs"}
    ]
    code, found = problems(tiny(tmp_path, "unpaired", datasets=paired_file))
    assert code == 1
    message = next(p["message"] for p in found if p["key"] == "datasets[0].type")
    assert "line 1 has no column 'completion' that type 'chatml.prompt_pairs' reads" in message
    assert "its columns are prompt, chosen, rejected" in message


def test_warnings_do_not_fail(tmp_path, tiny):
    code, found = problems(tiny(tmp_path, rl_beta=5.0, micro_batch_size=4), "--num-gpus", "2")
    assert code == 0
    assert {p["key"] for p in found if p["severity"] == "warning"} == {"rl_beta", "micro_batch_size"}
    sort = next(p["message"] for p in found if p["key"] == "micro_batch_size")
    assert "each sort sees 8 pairs (micro_batch_size 4 x 2 rank(s), aot_sort_scope: world)" in sort
    code, found = problems(tiny(tmp_path, micro_batch_size=4, aot_sort_scope="local"), "--num-gpus", "4")
    assert "each sort sees 4 pairs (micro_batch_size 4 x 1 rank(s), aot_sort_scope: local)" in str(found)
    assert "or set aot_sort_scope: step" in str(found)
    step = tiny(tmp_path, micro_batch_size=2, gradient_accumulation_steps=4, aot_sort_scope="step")
    code, found = problems(step, "--num-gpus", "2")
    # 2 x 2 ranks x 4 accumulation steps = 16 pairs per sort: no warning, only what the step scope replays.
    assert code == 0 and [(p["severity"], p["key"]) for p in found] == [("info", "aot_sort_scope")]
    assert "replays the random state" in found[0]["message"] and "relative 1e-4" in found[0]["message"]


def test_not_an_aot_config_and_missing_file(tmp_path, tiny):
    code, found = problems(tiny(tmp_path, rl="dpo"))
    assert code == 1 and found[0]["key"] == "rl"
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yml")])
    assert result.exit_code == 1 and "cannot read the file" in result.output


def test_help_and_usage_errors():
    result = runner.invoke(app, ["validate", "--help"])
    assert result.exit_code == 0 and "Example: aot-cli validate" in result.output
    assert runner.invoke(app, ["validate"]).exit_code == 2
    assert runner.invoke(app, ["validate", "x.yml", "--num-gpus", "0"]).exit_code == 2


def test_installed_executable(tmp_path, tiny):
    done = subprocess.run(
        [Path(sys.executable).parent / "aot-cli", "validate", tiny(tmp_path), "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["ok"] is True


@pytest.mark.parametrize(
    ("key", "nearest"), [("aot_cots", "aot_cost"), ("aot_sort_scop", "aot_sort_scope"), ("rl_bta", "rl_beta")]
)
def test_a_misspelt_key_is_an_error_naming_the_nearest_key(tmp_path, tiny, key, nearest):
    code, found = problems(tiny(tmp_path, **{key: 1}))
    assert code == 1
    assert found == [
        {
            "severity": "error",
            "key": key,
            "message": f"unknown key {key!r}; did you mean {nearest!r}? (axolotl ignores unknown keys, "
            f"so the run would use the default {nearest})",
        }
    ]


def test_an_unknown_key_like_no_other_is_a_warning(tmp_path, tiny):
    code, found = problems(tiny(tmp_path, my_notes="x"))
    assert (code, found) == (
        0,
        [{"severity": "warning", "key": "my_notes", "message": "unknown key 'my_notes': axolotl ignores it"}],
    )


def test_a_missing_local_base_model_is_an_error(tmp_path, tiny):
    code, found = problems(tiny(tmp_path, base_model="./models/none"))
    assert code == 1
    assert found[0]["key"] == "base_model"
    assert found[0]["message"].startswith(
        "./models/none: no such file or folder; build or download the model"
    )


def test_relative_paths_are_read_from_the_current_directory_as_axolotl_does(tmp_path, tiny, monkeypatch):
    (tmp_path / "cfgs").mkdir()
    data = tmp_path / "cfgs" / "train.jsonl"
    data.write_text((ROOT / "axolotl_aot/data/parity_paired_train.jsonl").read_text())
    config = tiny(
        tmp_path / "cfgs",
        datasets=[{"path": "train.jsonl", "type": "chatml.prompt_pairs"}],
        test_datasets=None,
        val_set_size=0.1,  # evaluates: no warning
    )
    monkeypatch.chdir(tmp_path)
    code, found = problems(config)
    assert code == 1
    assert found[0]["key"] == "datasets[0].path"
    assert found[0]["message"] == (
        f"train.jsonl: no such file or folder; it exists beside the config ({data}), but axolotl.cli.train "
        f"reads relative paths from the current directory ({tmp_path}): run from {data.parent} or give an "
        "absolute path"
    )
    monkeypatch.chdir(tmp_path / "cfgs")
    assert problems(config) == (0, [])


def test_a_malformed_rl_fails_its_file_and_the_others_are_still_checked(tmp_path, tiny):
    (tmp_path / "a").mkdir()
    bad, good = tiny(tmp_path / "a", rl=["aot"]), tiny(tmp_path)
    result = runner.invoke(app, ["validate", str(bad), str(good), "--json"])
    assert result.exit_code == 1
    first, second = json.loads(result.stdout)
    assert first["problems"] == [
        {
            "severity": "error",
            "key": "rl",
            "message": "rl is a list (['aot']), not aot or aot_unpaired: this is not an AOT config",
        }
    ]
    assert second["ok"] is True and second["problems"] == []


def test_messages_print_verbatim(tmp_path, tiny):
    (tmp_path / "in[v2]").mkdir()
    config = tiny(tmp_path / "in[v2]", rl=["aot"])
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 1
    output = "".join(result.output.split())  # rich may wrap a long path anywhere
    assert "".join(f"{config}: 1 error(s)".split()) in output
    assert "rlisalist(['aot'])" in output


def test_a_file_axolotl_refuses_is_named_and_the_files_after_it_are_still_checked(tmp_path, tiny):
    for name in "abc":
        (tmp_path / name).mkdir()
    first, last = tiny(tmp_path / "a"), tiny(tmp_path / "c")
    refused = tiny(tmp_path / "b", max_packed_sequence_len=1024)  # axolotl's schema raises for it
    result = runner.invoke(app, ["validate", str(first), str(refused), str(last), "--json"])
    assert result.exit_code == 1
    reports = json.loads(result.stdout)
    assert [(r["config"], r["ok"]) for r in reports] == [
        (str(first), True),
        (str(refused), False),
        (str(last), True),
    ]
    assert "`max_packed_sequence_len` is no longer supported" in reports[1]["problems"][0]["message"]
    result = runner.invoke(app, ["validate", str(first), str(refused), str(last)])
    assert result.exit_code == 1
    output = "".join(result.output.split())
    for path, verdict in ((first, "OK"), (refused, "1error(s)"), (last, "OK")):
        assert "".join(f"{path}:".split()) + verdict in output


def test_json_errors_are_objects_on_stdout(tmp_path):
    cases = [
        (["validate", "--json"], "Missing argument 'CONFIG...'"),
        (["validate", str(tmp_path / "x.yml"), "--num-gpus", "0", "--json"], "--num-gpus"),
    ]
    for args, text in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        error = json.loads(result.stdout)
        assert error.keys() == {"error", "exit_code"} and error["exit_code"] == 2
        assert text in error["error"]


def test_importing_the_cli_changes_nothing_and_a_command_undoes_its_quiet_settings(tmp_path, tiny):
    """A library user's process: axolotl's logging as its import sets it up, then the CLI imported
    and run in-process. The command's --json stays clean, and afterwards warnings reach stdout."""
    script = textwrap.dedent(
        f"""
        import json, logging, os, warnings
        import axolotl.cli  # the user's own axolotl logging, as a training script has it

        def state():
            loggers = ["", "axolotl", "torchao", "bitsandbytes", "torch.utils._pytree"]
            handlers = logging.getLogger().handlers + logging.getLogger("axolotl").handlers
            return (
                {{name: os.environ.get(name) for name in ("AXOLOTL_LOG_LEVEL", "LOG_LEVEL",
                    "ACCELERATE_LOG_LEVEL", "AXOLOTL_TEE_STDOUT", "AXOLOTL_DO_NOT_TRACK", "WANDB_MODE")}},
                {{name: logging.getLogger(name).level for name in loggers}},
                [handler.level for handler in handlers],
            )

        before = state()
        from typer.testing import CliRunner
        from axolotl_aot_cli.app import app
        assert state() == before, ("import", state(), before)
        result = CliRunner().invoke(app, ["validate", {str(tiny(tmp_path))!r}, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)[0]["ok"] is True
        assert state() == before, ("after the command", state(), before)
        print("---")
        logging.getLogger("axolotl.user").warning("an axolotl warning after the command")
        warnings.warn("a Python warning after the command")
        """
    )
    quiet_variables = ("AXOLOTL_LOG_LEVEL", "LOG_LEVEL", "ACCELERATE_LOG_LEVEL", "AXOLOTL_TEE_STDOUT")
    env = {k: v for k, v in os.environ.items() if k not in quiet_variables}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    during, after = done.stdout.split("---\n", 1)
    assert during == ""  # axolotl's logs to stdout were quiet while the command ran
    assert "an axolotl warning after the command" in after
    assert "a Python warning after the command" in after
