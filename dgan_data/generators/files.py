"""Safe reading and writing of generator files; nothing found in a file is executed.

``.pt`` files go through ``torch.load(weights_only=True)`` with an explicit allow-list;
NVIDIA ``.pkl`` networks through the restricted unpickler in ``nvidia.py``; our own
format is ``.safetensors`` with the architecture and config as JSON in its header.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ..fileio import save_safetensors

log = logging.getLogger(__name__)

__all__ = [
    "CONFIG_KEY",
    "SAFE_TORCH_GLOBALS",
    "CheckpointError",
    "check_file",
    "load_strict",
    "read_safetensors_metadata",
    "safe_torch_load",
    "save_generator",
]

#: Globals that real checkpoints need beyond plain tensors and containers.
#: rosinality's train.py stores its ``argparse.Namespace`` of options.
SAFE_TORCH_GLOBALS: list[Any] = [argparse.Namespace]

#: Header key of our ``.safetensors`` generator files.
CONFIG_KEY = "dgan_data.generator"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe, or not a known generator."""


def check_file(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a non-empty regular file."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` and only our allow-listed globals."""
    path = Path(path)
    check_file(path)
    try:
        with torch.serialization.safe_globals(SAFE_TORCH_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError...
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path}: refused to load: the file needs objects outside the safe allow-list "
                f"({msg}). dgan_data never executes code from checkpoints; convert the file to "
                "plain tensors (a state dict) or to .safetensors."
            ) from None
        raise CheckpointError(f"{path}: cannot read as a PyTorch checkpoint: {msg}") from None


def load_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict, reporting missing/unexpected keys and wrong shapes by name."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:5])})")
    if wrong:
        problems.append(f"{len(wrong)} tensors of the wrong shape (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise CheckpointError(
            f"{source}: state dict does not fit the model: " + "; ".join(problems)
        )
    with torch.no_grad():
        for k, t in own.items():
            t.copy_(state_dict[k].to(dtype=t.dtype))


def save_generator(G: Any, path: str | Path) -> Path:
    """Write a generator (``arch``, ``config``, ``state_dict()``) as ``.safetensors``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    meta = {CONFIG_KEY: json.dumps({"arch": G.arch, "config": G.config, "format_version": 1})}
    return save_safetensors(dict(G.state_dict()), path, meta)


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The string header of a ``.safetensors`` file (no tensor is read)."""
    check_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable .safetensors file ({err})") from None
