"""Shared fixtures: the tiny local model and an environment in which axolotl never goes online."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from axolotl_aot.tools.tiny_model import build_tiny_model

OFFLINE = {
    "AXOLOTL_DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}
os.environ.update(OFFLINE)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def models(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A policy and a different reference, so that log-ratios and rewards are not all zero."""
    return tiny_model, build_tiny_model(tmp_path_factory.mktemp("ref") / "model", seed=1)
