"""``import dgan_data`` (and so every ``dgan-data`` command) does not load torchvision:
its import loads torch._dynamo, about 1.2 s of the 3.9 s that ``dgan-data --version``
took on 2 CPU cores. torchvision is imported where it is first used."""

from __future__ import annotations

import os
import subprocess
import sys

from torchvision import tv_tensors

from dgan_data import DatasetGANStream

HEAVY = ("torchvision", "torch._dynamo")


def test_importing_the_package_and_its_cli_loads_neither():
    code = (
        "import sys, dgan_data, dgan_data.cli\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_stream_items_are_still_typed_tensors():
    images, masks = next(iter(DatasetGANStream("toyface-14", batch_size=2, device="cpu")))
    assert isinstance(images, tv_tensors.Image) and isinstance(masks, tv_tensors.Mask)
