"""What differs between the tested stacks (axolotl 0.19 / TRL 1.9 and axolotl 0.21 / TRL 1.14).

Each test runs on whichever stack the suite runs on (``make test`` and ``make test-latest``) and
checks that stack's behaviour against the installed axolotl version, read from its metadata rather
than from ``axolotl_aot.integration.compat``: ignoring the difference fails the test on one of the two stacks.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest
from axolotl_runs import ROOT, check_run, log_history, make_config, problems, tiny_config, train
from packaging.version import Version
from pydantic import ValidationError

from axolotl_aot.integration import compat
from axolotl_aot.integration.plugin import AOTPlugin
from axolotl_aot.tools.config import load_and_validate

LOADS_ENTRY_POINTS = Version(version("axolotl")) >= Version("0.21")
LOADED = "Plugin loaded successfully: axolotl_aot.AOTPlugin"


def test_the_distribution_declares_the_plugin_entry_point():
    ours = [point for point in entry_points(group="axolotl.plugins") if point.dist.name == "axolotl-aot"]
    assert [point.value for point in ours] == ["axolotl_aot:AOTPlugin"]
    assert ours[0].load() is AOTPlugin


def test_plugin_autoloaded_on_axolotl_021_only():
    assert compat.plugin_autoloaded() is LOADS_ENTRY_POINTS


def test_config_loads_rl_aot_without_plugins_line_only_on_axolotl_021(tmp_path):
    config = tiny_config(tmp_path, plugins=None)
    if LOADS_ENTRY_POINTS:
        assert load_and_validate(config).aot_mode == "paired"
    else:  # axolotl 0.19 validates rl against its own enum
        with pytest.raises(ValidationError, match="rl"):
            load_and_validate(config)


def test_validate_requires_the_plugins_line_only_where_axolotl_does_not_load_it(tmp_path):
    code, found = problems(tiny_config(tmp_path, plugins=None))
    plugin_errors = [p for p in found if p["key"] == "plugins"]
    if LOADS_ENTRY_POINTS:
        assert plugin_errors == []
    else:
        assert code == 1
        assert "add `plugins: [axolotl_aot.AOTPlugin]`" in plugin_errors[0]["message"]


@pytest.mark.training
def test_rl_aot_without_plugins_line_trains_only_on_axolotl_021(tmp_path, tiny_model):
    done = train(make_config(tmp_path, "paired", tiny_model, max_steps=2, plugins=None))
    if LOADS_ENTRY_POINTS:
        check_run(done, tmp_path / "out", 2)
    else:  # axolotl 0.19 validates rl against its own enum: the plugins line is required
        assert done.returncode != 0
        error = done.stderr[done.stderr.index("validation error for AxolotlConfig") :]  # axolotl's schema
        assert "\nrl\n" in error and "Input should be 'dpo'" in error, done.stderr[-2000:]
        assert "input_value='aot'" in error


@pytest.mark.training
def test_a_dpo_config_trains_identically_with_and_without_the_entry_point(tmp_path, tiny_model):
    hide = Path(__file__).parent / "hide_entry_point.py"
    env = {**os.environ, "AXOLOTL_LOG_LEVEL": "INFO", "LOG_LEVEL": "INFO"}  # axolotl logs plugin loading
    runs = {}
    # axolotl 0.19 loads no entry points, so hiding ours changes nothing there: one launch checks that
    # the plugin stays out of a DPO run; 0.21 also compares the run with the entry point hidden.
    launches = (("with", ["-m"]), ("without", [str(hide)])) if LOADS_ENTRY_POINTS else (("with", ["-m"]),)
    for name, launcher in launches:
        (tmp_path / name).mkdir()
        config = make_config(
            tmp_path / name,
            "paired",
            tiny_model,
            max_steps=3,
            rl="dpo",
            plugins=None,
            aot_cost=None,
            aot_sort_scope=None,
        )
        command = [sys.executable, *launcher, "axolotl.cli.train", str(config)]
        done = subprocess.run(
            command, cwd=config.parent, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stderr[-4000:]
        assert (LOADED in done.stdout + done.stderr) is (LOADS_ENTRY_POINTS and name == "with"), name
        runs[name] = [entry["loss"] for entry in log_history(tmp_path / name / "out") if "loss" in entry]
    assert len(runs["with"]) == 3
    if LOADS_ENTRY_POINTS:
        assert runs["with"] == runs["without"]


# ---- one door: only compat reaches into TRL and axolotl, and a missing name fails loudly ----

# Modules that may import trl/axolotl, and what: compat everything; a plugin class its BasePlugin base;
# the dataset-type module axolotl loads by name.
DOOR = {
    "axolotl_aot/integration/compat.py": None,
    "axolotl_aot/integration/plugin.py": {"axolotl.integrations.base"},
    "axolotl_aot/tools/smoke/probe.py": {"axolotl.integrations.base"},
    "axolotl_aot_chat.py": None,
}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports: import statements and ``import_module`` of a (formatted) string."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == (
            "import_module"
        ):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                arg = arg.values[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
    return found


def test_only_compat_imports_trl_or_axolotl():
    sources = [*ROOT.glob("axolotl_aot/**/*.py"), *ROOT.glob("cli/**/*.py"), ROOT / "axolotl_aot_chat.py"]
    assert len(sources) > 40
    outside = {}
    for path in sources:
        name = path.relative_to(ROOT).as_posix()
        allowed = DOOR.get(name, set())
        foreign = {m for m in imported_modules(path) if m.split(".")[0] in ("trl", "axolotl")}
        if allowed is not None and foreign - allowed:
            outside[name] = sorted(foreign - allowed)
    assert outside == {}
    assert "trl.trainer.utils" in imported_modules(
        ROOT / "axolotl_aot/integration/compat.py"
    )  # the scan sees


def test_a_trl_without_an_overridden_method_fails_the_import_naming_it():
    """TRL renaming ``_compute_loss`` must not silently train with TRL's own loss."""
    code = (
        "import trl.trainer.dpo_trainer as d\n"
        "del d.DPOTrainer._compute_loss\n"
        "import axolotl_aot.integration.trainers\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "axolotl_aot.integration.compat.IncompatibleRelease: axolotl-aot overrides or calls "
    )
    assert f"AxolotlDPOTrainer._compute_loss, which trl {version('trl')} does not have" in last


def test_a_trainer_without_trls_state_is_refused():
    with pytest.raises(
        compat.IncompatibleRelease, match=r"reads object\._metrics, which trl .* does not have"
    ):
        compat.check_trainer_state(object())
