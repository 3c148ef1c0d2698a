"""The suite's forked launches (``forkserver``) train exactly what a fresh interpreter trains."""

from __future__ import annotations

import os
import subprocess

import pytest
from axolotl_runs import LORA, check_run, command, final_weights, fork_server, log_history, make_config

pytestmark = pytest.mark.training


def test_a_forked_launch_equals_a_fresh_process(tmp_path, tiny_model):
    runs = {}
    for name in ("forked", "fresh"):
        (tmp_path / name).mkdir()
        config = make_config(tmp_path / name, "unpaired", tiny_model, max_steps=3, micro_batch_size=8, **LORA)
        if name == "forked":  # through the server itself: a silent fallback would compare two fresh runs
            server = fork_server()
            assert server is not None and server.serves(dict(os.environ))
            done = server.run("axolotl.cli.train", [str(config)], config.parent, timeout=900)
        else:
            done = subprocess.run(command(config), cwd=config.parent, capture_output=True, text=True)
        check_run(done, tmp_path / name / "out", 3)
        assert "Plugin loaded successfully: axolotl_aot.AOTPlugin" in done.stdout + done.stderr
        runs[name] = (log_history(tmp_path / name / "out"), final_weights(tmp_path / name / "out"))
    (forked_log, forked), (fresh_log, fresh) = runs["forked"], runs["fresh"]
    timing = ("runtime", "per_second")
    strip = lambda log: [{k: v for k, v in e.items() if not k.endswith(timing)} for e in log]  # noqa: E731
    assert strip(forked_log) == strip(fresh_log)
    assert forked.keys() == fresh.keys()
    assert all((forked[k] == fresh[k]).all() for k in forked)  # bit for bit


def test_a_failing_launch_keeps_its_exit_code_and_traceback(tmp_path, tiny_model):
    config = make_config(tmp_path, "paired", tiny_model, max_steps=1, aot_cost="no-such-cost")
    done = fork_server().run("axolotl.cli.train", [str(config)], config.parent, timeout=900)
    assert done.returncode == 1
    assert "aot_cost" in done.stdout + done.stderr and "no-such-cost" in done.stdout + done.stderr
