"""Running the real axolotl entry points on the tiny model, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TINY = {
    "paired": ROOT / "example_yamls/tiny/aot.yml",
    "unpaired": ROOT / "example_yamls/tiny/aot_unpaired.yml",
}
LORA = {"adapter": "lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "lora_target_linear": True}
QLORA = {**LORA, "adapter": "qlora", "load_in_4bit": True}


def tiny_config(tmp_path: Path, mode: str = "paired", **changes) -> Path:
    """The tiny example config of ``mode`` with absolute data paths and ``changes`` (None removes a key)."""
    cfg = yaml.safe_load(TINY[mode].read_text())
    for dataset in cfg["datasets"] + cfg.get("test_datasets", []):
        dataset["path"] = str(ROOT / dataset["path"])
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    path = tmp_path / "cfg.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def make_config(tmp_path: Path, mode: str, model: Path, **changes) -> Path:
    """A tiny config that trains ``model`` into ``tmp_path/out``, with a checkpoint at the last step."""
    changes.setdefault("save_steps", changes["max_steps"])  # the checkpoint holds the log history
    if not {"eval_steps", "eval_strategy"} & changes.keys():  # evaluate only when a test asks
        changes.update(eval_steps=None, eval_strategy="no")
    return tiny_config(
        tmp_path,
        mode,
        base_model=str(model),
        output_dir=str(tmp_path / "out"),
        dataset_prepared_path=str(tmp_path / "prep"),
        **changes,
    )


def train(config: Path, launcher: str = "python") -> subprocess.CompletedProcess:
    entry = ["-m", "axolotl.cli.train", str(config)]
    if launcher == "python":
        command = [sys.executable, *entry]
    else:
        command = [str(BIN / "accelerate"), "launch", "--cpu", "--num_processes", "1", "--num_machines", "1"]
        command += ["--mixed_precision", "no", "--dynamo_backend", "no", *entry]
    return subprocess.run(
        command,
        cwd=config.parent,
        env=os.environ,  # conftest sets the offline variables
        capture_output=True,
        text=True,
        timeout=900,
    )
