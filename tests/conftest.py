"""Shared fixtures: the tiny local model, an environment in which axolotl never goes online, one
compute thread per process, and the slowest tests scheduled first (tests/README.md)."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import pytest

OFFLINE = {
    "AXOLOTL_DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}
# One compute thread per process: the suite runs one pytest worker per core, and each worker's
# launches and torch.distributed ranks would otherwise each start a thread per core (a training
# step of the tiny model took 2.9 s so, 0.7 s with one thread). Set before torch is imported.
THREADS = dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1")
os.environ.update(OFFLINE)
os.environ.update(THREADS)

import torch  # noqa: E402

from axolotl_aot.tools.tiny_model import build_tiny_model  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def models(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A policy and a different reference, so that log-ratios and rewards are not all zero."""
    return tiny_model, build_tiny_model(tmp_path_factory.mktemp("ref") / "model", seed=1)


# The stack `make test` runs (axolotl 0.19); `make test-latest` runs the newest (tests/README.md).
FAST_STACK = version("axolotl").startswith("0.19")

# Files by their measured time, longest first: xdist hands out tests in collection order, so the
# long ones start first and the short ones fill in at the end, instead of one long test running
# alone on one core at the end (pytest --durations=30).
LONGEST_FIRST = (
    "test_demo.py",
    "test_sharded.py",
    "test_train_e2e.py",
    "test_evaluation.py",
    "test_resume.py",
    "test_report.py",
    "test_multiprocess.py",
    "test_smoke.py",
    "test_alignment.py",
    "test_chat_data.py",
    "test_data_checks.py",
    "test_compat.py",
    "test_moe.py",
    "test_forkserver.py",
    "test_settings.py",
    "test_trainers.py",
    "test_distributed.py",
)


# The tests that share a module-scoped training run, by node-id prefix: each group is one unit of
# work, run by one xdist worker, so that its run is trained once per session, not once per worker.
# (pytest-xdist's own ``xdist_group`` marks do not reach its scheduler under pytest 9.2.)
SHARED_RUNS = {
    "tests/test_report.py::": "report",  # paired_run, adapter_run
    "tests/test_evaluation.py::test_paired_eval_is_whole_set_and_equals_the_report": "evaluation",
    "tests/test_evaluation.py::test_load_best_model_at_end_keeps_the_lowest_violation": "evaluation",
    "tests/test_evaluation.py::test_early_stopping_patience_stops_when": "evaluation",
    "tests/test_evaluation.py::test_report_compares_a_dpo_run_with_an_aot_run": "evaluation",  # paired_run
    "tests/test_multiprocess.py::test_two_cpu_processes_equal_one_process": "multiprocess",  # one_process
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's load scheduling in collection order (longest first), a shared run's tests as one unit."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((group for prefix, group in SHARED_RUNS.items() if nodeid.startswith(prefix)), nodeid)

    config.option.loadscopereorder = False  # keep LONGEST_FIRST's order
    return SharedRunScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first; on the newest stack, the tests marked ``one_stack`` are deselected."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept
    if not FAST_STACK:
        skipped = [item for item in items if item.get_closest_marker("one_stack")]
        if skipped:
            config.hook.pytest_deselected(items=skipped)
            items[:] = [item for item in items if not item.get_closest_marker("one_stack")]
