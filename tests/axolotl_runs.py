"""Running the real axolotl entry points on the tiny model, for the end-to-end tests."""

from __future__ import annotations

import atexit
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import torch
import yaml
from forkserver import ForkServer
from safetensors.torch import load_file

from axolotl_aot.integration.checkpoints import incomplete

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FAST_STACK = version("axolotl").startswith("0.19")  # make test's stack; make test-latest runs axolotl 0.21
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


def small_dataset(tmp_path: Path, mode: str, rows: int) -> Path:
    """The first ``rows`` rows of the bundled training set (unpaired: half of each label), as a file."""
    source = ROOT / f"axolotl_aot/data/parity_{mode}_train.jsonl"
    lines = [json.loads(line) for line in source.open()]
    if mode == "unpaired":
        lines = [r for r in lines if r["label"]][: rows // 2] + [r for r in lines if not r["label"]][
            : rows // 2
        ]
    else:
        lines = lines[:rows]
    path = tmp_path / f"{mode}-{rows}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in lines))
    return path


def with_dataset(config: Path, data: Path) -> Path:
    """``config`` training on ``data`` only, without an evaluation set."""
    cfg = yaml.safe_load(config.read_text())
    cfg["datasets"][0]["path"] = str(data)
    cfg.pop("test_datasets", None)
    config.write_text(yaml.safe_dump(cfg))
    return config


def command(config: Path, launcher: str = "python", processes: int = 1) -> list[str]:
    entry = ["-m", "axolotl.cli.train", str(config)]
    if launcher == "python":
        return [sys.executable, *entry]
    if launcher == "torchrun":
        return [str(BIN / "torchrun"), "--nproc_per_node", str(processes), *entry]
    launch = [str(BIN / "accelerate"), "launch", "--num_processes", str(processes), "--num_machines", "1"]
    # --cpu makes accelerate start a single process; --multi_gpu is its torch.distributed launcher,
    # which the plugin turns into gloo ranks on a CPU-only machine.
    launch.append("--cpu" if processes == 1 else "--multi_gpu")
    return [*launch, "--mixed_precision", "no", "--dynamo_backend", "no", *entry]


def train(
    config: Path, launcher: str = "python", processes: int = 1, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``config`` trained through ``launcher``; a plain one-process launch is forked (``forkserver``)."""
    if launcher == "python" and env is None:
        return launch("axolotl.cli.train", config)
    return subprocess.run(
        command(config, launcher, processes),
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


def evaluate(config: Path) -> subprocess.CompletedProcess:
    """``python -m axolotl.cli.evaluate``: writes ``eval_summary.csv`` to the config's ``output_dir``."""
    return launch("axolotl.cli.evaluate", config)


_servers: dict[int, ForkServer] = {}  # this process's fork server, started on first use


def fork_server() -> ForkServer | None:
    """This process's fork server, started on first use; None where ``AOT_TEST_FORK=0``."""
    server = _servers.get(os.getpid())
    if server is None and os.environ.get("AOT_TEST_FORK", "1") == "1":
        server = _servers[os.getpid()] = ForkServer()
        atexit.register(server.close)
    return server


def launch(module: str, config: Path) -> subprocess.CompletedProcess:
    """``python -m module config`` in the config's folder: forked from this worker's pre-imported
    server when the environment is the one it started with, else a fresh interpreter."""
    server = fork_server()
    if server is not None and server.serves(dict(os.environ)):
        return server.run(module, [str(config)], config.parent, timeout=900)
    return subprocess.run(
        [sys.executable, "-m", module, str(config)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=900,
    )


def train_until(config: Path, checkpoint: Path) -> None:
    """Start training ``config`` and SIGKILL it as soon as ``checkpoint`` is completely saved."""
    with (config.parent / "killed.log").open("w") as log:
        process = subprocess.Popen(command(config), cwd=config.parent, stdout=log, stderr=log)
        deadline = time.monotonic() + 600
        while incomplete(checkpoint) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert incomplete(checkpoint) is None, (config.parent / "killed.log").read_text()[-4000:]


def log_history(out: Path) -> list[dict]:
    """The log history of a run's last checkpoint (every logged step and evaluation)."""
    checkpoint = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    """The weights a run saved at its end: the adapter for LoRA, else the whole model."""
    adapter = out / "adapter_model.safetensors"
    return load_file(adapter if adapter.exists() else out / "model.safetensors")


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def weight_change(weights: dict[str, torch.Tensor], model: Path) -> float:
    """The largest change training made: to the base weights, or to LoRA's B (initialised to 0)."""
    if any("lora_" in key for key in weights):
        return max(v.abs().max().item() for k, v in weights.items() if "lora_B" in k)
    return max_difference(weights, load_file(model / "model.safetensors"))


AOT_METRICS = ("aot/violation_fraction", "aot/violation_area", "aot/win_rate", "aot/min_quantile_margin")


def check_run(done: subprocess.CompletedProcess, out: Path, steps: int) -> list[dict]:
    assert done.returncode == 0, done.stderr[-4000:]
    return check_logs(out, steps)


def check_logs(out: Path, steps: int) -> list[dict]:
    """The ``steps`` training logs of a run's last checkpoint, each with finite AOT metrics."""
    logs = [entry for entry in log_history(out) if "loss" in entry]
    assert len(logs) == steps
    for entry in logs:
        assert math.isfinite(entry["loss"])
        for key in (*AOT_METRICS, "aot/sort_size", "rewards/chosen", "rewards/rejected", "rewards/margins"):
            assert math.isfinite(entry[key]), key
    return logs


def logged_steps(done) -> int:
    """Training steps the run itself logged (axolotl prints each step's log dict)."""
    return (done.stdout + done.stderr).count("'loss': ")


def problems(path: Path, *extra: str) -> tuple[int, list[dict]]:
    """``aot-cli validate --json`` of ``path`` in process: its exit code and the problems it reports."""
    from typer.testing import CliRunner

    from axolotl_aot_cli.app import app

    result = CliRunner().invoke(app, ["validate", str(path), "--json", *extra])
    return result.exit_code, json.loads(result.stdout)[0]["problems"]


def free_port() -> int:
    """A TCP port nothing listens on, for a torch.distributed rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
