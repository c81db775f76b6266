"""Shared test fixtures: the reference parity files and small helpers."""

from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def _few_threads():
    """Keep tests polite on small machines."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
