"""Shared test fixtures: the reference parity files and small helpers."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT / "tests" / "fixtures" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``tests/fixtures/reference`` in the checkout (see its README.md); fails loudly if absent."""
    if not (REFERENCE_DIR / "README.md").is_file():
        pytest.fail(
            f"reference fixtures not found at {REFERENCE_DIR}: the parity tests need the "
            "fixture files committed under tests/fixtures/reference/"
        )
    return REFERENCE_DIR


def _threads_per_test() -> int:
    """At most 2 threads, and the machine's cores shared out among pytest-xdist workers."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(2, (os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep tests polite on small machines (and parallel workers off each other's cores)."""
    torch.set_num_threads(_threads_per_test())
    yield


@pytest.fixture
def no_hang():
    """Fail (TimeoutError after 20 s, by SIGALRM) instead of blocking forever, e.g. on a
    FIFO nobody reads. POSIX only: tests using it skip where there is no SIGALRM."""

    def blocked(*_: object) -> None:
        raise TimeoutError("the call blocked (on a FIFO?) for 20 s")

    old = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def lightning(monkeypatch):
    """The lightning package (skip without it), its log handlers writing to this test's
    stderr: lightning binds them to the sys.stderr of the test that first imports it,
    and a later test's capsys would see "Logging error" (a closed stream) instead."""
    module = pytest.importorskip("lightning")
    for name in ("lightning", "lightning.fabric", "lightning.pytorch"):
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler:
                monkeypatch.setattr(handler, "stream", sys.stderr)
    return module
