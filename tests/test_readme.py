"""Everything the README shows exists: commands, make targets, YAML keys, files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from axolotl.utils.schemas.config import AxolotlInputConfig

from axolotl_aot.integration.args import INCOMPATIBLE, AOTArgs
from axolotl_aot.tools.config import validate_raw

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.S)


@pytest.mark.parametrize("command", sorted(set(re.findall(r"aot-cli ([a-z][a-z-]+)", README))))
def test_every_cli_command_shown_has_help(command):
    done = subprocess.run(
        [Path(sys.executable).parent / "aot-cli", command, "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Example: aot-cli" in done.stdout


def test_every_make_target_shown_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    shown = set(re.findall(r"make ([a-z][a-z-]*)", README))
    assert shown and shown <= targets, shown - targets


def test_every_key_in_the_table_is_declared():
    table_keys = re.findall(r"^\| `([a-z_]+)` \|", README, re.M)
    known = set(AOTArgs.model_fields) | set(AxolotlInputConfig.model_fields)
    assert {"rl", "rl_beta", "aot_cost", "aot_sort_scope", "aot_label_smoothing"} <= set(table_keys)
    assert set(table_keys) <= known, set(table_keys) - known
    declared = {name for name in AOTArgs.model_fields if name != "aot_mode"}
    assert declared <= set(table_keys), "every plugin key is documented"


def test_rejected_options_listed_are_the_rejected_ones():
    paragraph = README[README.index("Rejected when the config loads") :].split("\n\n")[0]
    listed = set(re.findall(r"`([a-z_]+)", paragraph))
    assert set(INCOMPATIBLE) <= listed


def test_the_yaml_snippet_validates():
    snippet = next(body for lang, body in BLOCKS if lang == "yaml")
    cfg = yaml.safe_load((ROOT / "example_yamls/tiny/aot.yml").read_text())
    for dataset in cfg["datasets"] + cfg["test_datasets"]:
        dataset["path"] = str(ROOT / dataset["path"])
    cfg.update(yaml.safe_load(snippet))
    validated = validate_raw(cfg, ROOT / "README.md")
    assert validated.aot_mode == "paired" and validated.rl_beta == 0.01


def test_files_the_readme_names_exist():
    names = set(re.findall(r"(example_yamls/[\w/]+\.yml|docs/[\w.]+|axolotl_aot/data/[\w.]+)", README))
    assert names
    missing = [name for name in names if not (ROOT / name).exists()]
    assert not missing, missing
