"""Where a run ran: CPU threads for a block of work, and the environment record."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..conventions import check_device, check_int
from .models import _SMP

__all__ = ["environment_info", "torch_threads"]


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily use ``threads`` intra-op CPU threads (None: leave as is)."""
    if threads is None:
        yield
        return
    # 2.7 was truncated to 2, True used as 1, "2" accepted, 0 a raw torch RuntimeError
    threads = check_int(threads, "threads", 1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info(device: torch.device | str | None = None) -> dict[str, Any]:
    """Hardware and library versions, for results files (timings mean little without)."""

    # checked first: "cuda" on a CPU-only machine was torch's raw "no NVIDIA driver"
    # error, "cpux" its device-string error, and "mps" was recorded where it is absent
    device = check_device(device) or torch.device("cpu")
    hardware: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        hardware["gpu"] = torch.cuda.get_device_name(device)
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "dgan_data": __version__,
    }
    if _SMP:
        import segmentation_models_pytorch as smp

        versions["segmentation_models_pytorch"] = smp.__version__
    return {"hardware": hardware, "versions": versions}
