"""A pre-imported parent that forks each single-process axolotl launch of the suite (never shipped).

A launch of ``python -m axolotl.cli.train`` on the tiny model spends most of its time importing
torch, transformers, TRL, datasets, DeepSpeed and axolotl. Each pytest worker starts one server
that imports those third-party modules once (never ``axolotl_aot``: a config without the plugin
must not see its patches), then forks a child per launch. The child takes the launch's working
folder, environment, argv and output files, runs the module as ``__main__`` exactly as ``python
-m`` would, runs the exit handlers and exits with the interpreter's exit code: a fresh process in
all but its imports. ``tests/test_forkserver.py`` checks a forked run against a fresh process.

Launches that need a fresh interpreter use ``subprocess`` instead: other launchers (torchrun,
accelerate), an environment other than the suite's (the sharded-engine harness's
``sitecustomize``, log levels read at import), and a launch a test kills.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

# Modules every training or evaluation launch imports, whatever its config. Not
# ``axolotl.core.builders``: it imports ``axolotl.core.training_args``, whose classes axolotl builds
# once, with the mixins of the plugins registered by then (the AOT settings among them).
PRELOAD = (
    "torch",
    "numpy",
    "datasets",
    "transformers",
    "peft",
    "accelerate",
    "trl",
    "deepspeed",
    "axolotl.cli.config",
    "axolotl.cli.train",
    "axolotl.cli.evaluate",
    "axolotl.common.datasets",
    "axolotl.integrations.base",
    "axolotl.loaders",
    "axolotl.utils.trainer",
    "axolotl.train",
    "axolotl.evaluate",
)
VOLATILE = {"PYTEST_CURRENT_TEST"}  # set by pytest per test: passed on, never a reason to fall back


def _exit_code(error: SystemExit) -> int:
    """The exit status the interpreter gives a ``SystemExit`` (printing a non-integer code as it does)."""
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)
    return 1


def _child(request: dict, added: dict[str, str], removed: set[str], replies: int) -> None:
    """Become the launch: never returns."""
    code = 1
    try:
        os.close(replies)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.update(added)  # what the server's imports set, as the launch's own imports would
        for key in removed:
            os.environ.pop(key, None)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        sys.path[0] = request["cwd"]  # python -m puts the working folder first
        sys.argv = ["-m", *request["args"]]
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as error:
            code = _exit_code(error)
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed stream: nothing left to flush
                stream.flush()
        os._exit(code)


def serve() -> None:
    """The server: requests and replies are JSON lines on its stdin and (a copy of) its stdout."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the imports print goes to the server's log, not into the replies
    before = dict(os.environ)
    for name in PRELOAD:
        importlib.import_module(name)
    assert "axolotl.core.training_args" not in sys.modules, "a preloaded module built the training arguments"
    assert not any(name.startswith("axolotl_aot") for name in sys.modules), "a preloaded module imported ours"
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    assert not threads, f"a preloaded module started threads, which a fork would not copy: {threads}"
    added = {k: v for k, v in os.environ.items() if before.get(k) != v}
    removed = before.keys() - os.environ.keys()
    replies.write(json.dumps({"added": sorted(added)}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request, added, removed, replies.fileno())
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")


class ForkServer:
    """One server per pytest worker, started on first use with the worker's environment."""

    def __init__(self) -> None:
        self.env = dict(os.environ)
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (the server's log, read if it fails)
        self.process = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=tempfile.gettempdir(),
            env=self.env,
        )
        ready = self.process.stdout.readline()
        if not ready:
            self.log.seek(0)
            raise RuntimeError(f"the fork server did not start:\n{self.log.read()[-4000:]}")
        # Variables the imports set (a fresh launch's imports set them too): no reason to fall back.
        self.ignored = VOLATILE | set(json.loads(ready)["added"])

    def serves(self, env: dict[str, str]) -> bool:
        """Whether a launch with ``env`` gets the imports a fresh process would: the variables are
        the server's, but for those the imports set (in-process tests import axolotl too)."""
        strip = lambda e: {k: v for k, v in e.items() if k not in self.ignored}  # noqa: E731
        return self.process.poll() is None and strip(env) == strip(self.env)

    def run(self, module: str, args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        """``python -m module *args`` in ``cwd``, forked: stdout and stderr captured as text."""
        with tempfile.TemporaryDirectory() as scratch:
            out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
            request = {"module": module, "args": args, "cwd": str(cwd), "env": dict(os.environ)}
            self.process.stdin.write(json.dumps({**request, "stdout": str(out), "stderr": str(err)}) + "\n")
            self.process.stdin.flush()
            pid = json.loads(self.process.stdout.readline())["pid"]
            expired = threading.Event()

            def kill() -> None:
                expired.set()
                os.kill(pid, signal.SIGKILL)

            timer = threading.Timer(timeout, kill)
            timer.start()
            try:
                returncode = json.loads(self.process.stdout.readline())["returncode"]
            finally:
                timer.cancel()
            if expired.is_set():
                raise subprocess.TimeoutExpired([module, *args], timeout)
            return subprocess.CompletedProcess(
                [sys.executable, "-m", module, *args],
                returncode,
                out.read_text(errors="replace"),
                err.read_text(errors="replace"),
            )

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.log.close()


if __name__ == "__main__":
    serve()
