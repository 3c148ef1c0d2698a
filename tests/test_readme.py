"""Everything the README and docs/*.md show exists: commands, make targets, YAML keys, files, links."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from axolotl.utils.schemas.config import AxolotlInputConfig
from axolotl_runs import ROOT

from axolotl_aot.integration.args import AOTArgs
from axolotl_aot.integration.settings import INCOMPATIBLE
from axolotl_aot.tools.config import validate_raw

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.S)
# The README is the front door; the reference it links to lives in docs/.
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = {ROOT / "README.md": README} | {path: path.read_text() for path in DOCS}
TEXT = "\n".join(PAGES.values())


def shown_options() -> dict[str, set[str]]:
    """Each ``aot-cli COMMAND`` the pages show, with the ``--options`` shown on the same line."""
    shown: dict[str, set[str]] = {}
    for command, rest in re.findall(r"aot-cli ([a-z][a-z-]+)([^\n`]*)", TEXT):
        shown.setdefault(command, set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest))
    return shown


SHOWN = shown_options()


@pytest.mark.parametrize("command", sorted(SHOWN))
def test_every_cli_command_shown_has_help(command):
    done = subprocess.run(
        [Path(sys.executable).parent / "aot-cli", command, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "Example: aot-cli" in done.stdout
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", done.stdout))
    assert SHOWN[command] <= options, (
        f"shown but not in `aot-cli {command} --help`: {SHOWN[command] - options}"
    )


def test_the_pages_show_options_of_the_commands():
    """The scan above has something to check: the walkthrough's options are found."""
    assert {"--gpu"} <= SHOWN["validate"] and {"--config", "--out"} <= SHOWN["report"], SHOWN


def test_every_make_target_shown_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    shown = set(re.findall(r"make ([a-z][a-z-]*)", TEXT))
    assert shown and shown <= targets, shown - targets


def test_every_key_in_the_table_is_declared():
    table_keys = re.findall(r"^\| `([a-z_]+)` \|", README, re.M)
    known = set(AOTArgs.model_fields) | set(AxolotlInputConfig.model_fields)
    assert {"rl", "rl_beta", "aot_cost", "aot_sort_scope", "aot_label_smoothing"} <= set(table_keys)
    assert set(table_keys) <= known, set(table_keys) - known
    declared = {name for name in AOTArgs.model_fields if name != "aot_mode"}
    assert declared <= set(table_keys), "every plugin key is documented"


def test_rejected_options_listed_are_the_rejected_ones():
    settings = (ROOT / "docs/settings.md").read_text()
    paragraph = settings[settings.index("Rejected when the config loads") :].split("\n\n")[0]
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
    names = set(re.findall(r"(example_yamls/[\w/]+\.yml|docs/[\w.-]+|axolotl_aot/data/[\w.]+)", TEXT))
    assert names
    missing = [name for name in names if not (ROOT / name).exists()]
    assert not missing, missing


def test_every_relative_link_resolves():
    """Links and images, relative to the page they are in (a page in docs/ links `report_example.png`)."""
    broken = []
    for page, text in PAGES.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            path, _, anchor = target.partition("#")
            if re.match(r"[a-z]+:", path):
                continue
            if path and not (page.parent / path).exists():
                broken.append(f"{page.name}: {target}")
            if anchor and not path:
                headings = re.findall(r"^#+ (.+)$", text, re.M)
                slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
                if anchor not in slugs:
                    broken.append(f"{page.name}: {target}")
    assert not broken, broken


def test_every_module_has_its_line_in_the_library_docs_and_the_package_docstring():
    import axolotl_aot

    listed = set(re.findall(r"^([a-z_.]+): ", axolotl_aot.__doc__, re.MULTILINE))
    table = (ROOT / "docs/library.md").read_text()
    modules = set()
    for path in (ROOT / "axolotl_aot").rglob("*.py"):
        parts = path.relative_to(ROOT / "axolotl_aot").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) >= 2:  # a module of ot/integration/tools, or a package of tools
            modules.add(".".join(parts[:2]))
    assert modules and modules == listed
    assert all(f"`{module}`" in table for module in modules), sorted(
        m for m in modules if f"`{m}`" not in table
    )
