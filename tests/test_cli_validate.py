"""aot-cli validate: each mistake reported with its key path and exit code (Typer and the executable)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from axolotl_runs import tiny_config
from typer.testing import CliRunner

from axolotl_aot_cli.app import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def tiny(tiny_model: Path) -> Callable[..., Path]:
    """``tiny_config`` training the tiny model built for the session (its tokenizer renders chat types)."""
    return functools.partial(tiny_config, base_model=str(tiny_model))


def problems(path: Path, *extra: str) -> tuple[int, list[dict]]:
    result = runner.invoke(app, ["validate", str(path), "--json", *extra])
    return result.exit_code, json.loads(result.stdout)[0]["problems"]


@pytest.mark.parametrize("mode", ["paired", "unpaired"])
def test_tiny_configs_pass_with_no_problem(tmp_path, mode, tiny):
    assert problems(tiny(tmp_path, mode)) == (0, [])


def test_gpu_examples_pass_and_hub_data_is_reported_unchecked():
    result = runner.invoke(
        app, ["validate", *map(str, sorted((ROOT / "example_yamls").glob("aot*.yml"))), "--gpu"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count(": OK") == 3
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
    assert "row 1 has no column 'completion' that type 'chatml.prompt_pairs' reads" in message
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
    assert code == 0 and found == []  # 2 x 2 ranks x 4 accumulation steps = 16 pairs per sort


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
