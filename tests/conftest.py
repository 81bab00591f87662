"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# No timed assertions: Hypothesis's per-example deadline and its too-slow health check fail a correct
# test on a loaded machine (seen under a concurrent workflow run), so both are off for every test.
settings.register_profile("untimed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("untimed")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny-model tests: on a busy 2-core machine two threads wait
    on each other at every small op, and one thread ran these tests up to ten times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """The packaged SmolLM2-135M-Instruct as a checkpoint folder: the repository's model cache when a
    workflow run has filled it, else converted once per test session."""
    from cft.models import resolve_model_dir

    cached = ROOT / "resources" / "models"
    cache = cached if (cached / "smollm2-135m-instruct").is_dir() else tmp_path_factory.getbasetemp() / "models"
    return resolve_model_dir("packaged:smollm2-135m-instruct", cache)
