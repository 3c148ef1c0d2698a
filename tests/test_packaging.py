"""The installed distribution: its console script, its import names and its dependencies."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


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


def test_declared_dependencies_and_extras():
    dist = distribution("axolotl-aot")
    assert dist.metadata["Requires-Python"] == ">=3.11"
    requires = dist.requires or []
    assert "axolotl<0.22,>=0.19" in requires
    assert {"flash-attn", "dev"} <= set(dist.metadata.get_all("Provides-Extra"))
    assert 'axolotl[flash-attn]<0.22,>=0.19; extra == "flash-attn"' in requires
    for tool in ("pytest", "hypothesis", "pot", "ruff"):
        assert any(r.startswith(tool) and 'extra == "dev"' in r for r in requires), tool


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
