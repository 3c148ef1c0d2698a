"""The installed distribution: its console script, its import names and its dependencies."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions, version
from pathlib import Path

from axolotl_runs import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

BIN = Path(sys.executable).parent


def test_console_script_runs(tmp_path):
    done = subprocess.run([BIN / "aot-cli", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"aot-cli {distribution('axolotl-aot').version}"


def test_cli_imports_under_a_name_that_cannot_collide(tmp_path):
    """Away from the source tree there is no top-level ``cli``; the app is ``axolotl_aot_cli``."""
    probe = "import importlib.util as u; import axolotl_aot_cli.app; print(u.find_spec('cli') is None)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert distribution("axolotl-aot").read_text("top_level.txt").split() == [
        "axolotl_aot",
        "axolotl_aot_chat",
        "axolotl_aot_cli",
    ]


def test_the_dataset_type_resolves_through_axolotl_away_from_the_source_tree(tmp_path):
    """axolotl resolves ``type: module.function`` only for a top-level module: the installed one."""
    probe = (
        "from axolotl.prompt_strategies.kto import load; "
        "fn = load('axolotl_aot_chat.unpaired', {'datasets': [{'type': 'axolotl_aot_chat.unpaired'}]}); "
        "print(fn.__module__, fn.__qualname__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["axolotl_aot_chat", "unpaired.<locals>.transform_fn"]


def requirement_closure(name: str) -> set[str]:
    """``name`` and every distribution its non-optional requirements pull in, as installed here."""
    seen, todo = set(), [name]
    while todo:
        current = canonicalize_name(todo.pop())
        if current in seen:
            continue
        seen.add(current)
        try:
            requires = distribution(current).requires or []
        except PackageNotFoundError:
            continue  # a requirement for another platform or Python
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_declared_requirements_are_installed_and_cover_every_runtime_import():
    """What ``axolotl_aot`` and the CLI import at run time comes with a plain install, not only ``[dev]``."""
    for line in distribution("axolotl-aot").requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            installed = version(req.name)
            assert req.specifier.contains(installed, prereleases=True), (req, installed)
    closure = requirement_closure("axolotl-aot")
    providers = packages_distributions()
    ours = {"axolotl_aot", "axolotl_aot_cli", "axolotl_aot_chat", "cli"}
    imported = set()
    for source in [
        *(ROOT / "axolotl_aot").rglob("*.py"),
        *(ROOT / "cli").glob("*.py"),
        ROOT / "axolotl_aot_chat.py",
    ]:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {
        name for name in imported - ours if name not in sys.stdlib_module_names and name != "__future__"
    }
    assert {"torch", "typer", "axolotl"} <= third_party  # the scan saw the real imports
    missing = {
        name: providers.get(name)
        for name in third_party
        if not {canonicalize_name(d) for d in providers.get(name, [])} & closure
    }
    assert not missing, f"imported at run time but not a (transitive) requirement: {missing}"


def test_the_wheel_holds_every_module_and_the_bundled_data(tmp_path):
    """A regular (not editable) install gets every subpackage and the bundled rows."""
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(ROOT)]
    done = subprocess.run([*build, "-w", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    sources = [p for p in (ROOT / "axolotl_aot").rglob("*") if p.suffix in (".py", ".jsonl")]
    expected = {p.relative_to(ROOT).as_posix() for p in sources} | {"axolotl_aot_chat.py"}
    expected |= {f"axolotl_aot_cli/{p.name}" for p in (ROOT / "cli").glob("*.py")}
    assert len(expected) > 40 and not expected - names, sorted(expected - names)
