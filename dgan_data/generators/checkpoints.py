"""Checkpoint format detection and safe loading.

Nothing found in a file is ever executed: ``.pt`` files go through
``torch.load(weights_only=True)`` with an explicit allow-list, NVIDIA ``.pkl``
networks through a restricted unpickler, and our own format is ``.safetensors``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .base import Generator

log = logging.getLogger(__name__)

#: Globals that real checkpoints need beyond plain tensors and containers.
#: rosinality's train.py stores its ``argparse.Namespace`` of options.
SAFE_TORCH_GLOBALS: list[Any] = [argparse.Namespace]

CONFIG_KEY = "dgan_data.generator"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe, or not a known generator."""


# ------------------------------------------------------------------ helpers
def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` and only our allow-listed globals."""
    path = Path(path)
    _check_file(path)
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


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")


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


def atomic_save_file(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]
) -> None:
    """``safetensors`` save through a temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ------------------------------------------------------------ our own format
def save_generator(G: Generator, path: str | Path) -> Path:
    """Write ``G`` as ``.safetensors``; its architecture and config go in the header."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    meta = {CONFIG_KEY: json.dumps({"arch": G.arch, "config": G.config, "format_version": 1})}
    atomic_save_file(dict(G.state_dict()), path, meta)
    return path


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable .safetensors file ({err})") from None


def load_safetensors_generator(path: Path) -> Generator:
    from . import ARCHITECTURES

    meta = read_safetensors_metadata(path)
    if CONFIG_KEY not in meta:
        raise CheckpointError(
            f"{path}: .safetensors file without a dgan_data generator config in its header; "
            "write generators with Generator.save()"
        )
    try:
        info = json.loads(meta[CONFIG_KEY])
        arch, config = info["arch"], info["config"]
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: corrupt generator config in header ({err})") from None
    if arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{path}: unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    G = ARCHITECTURES[arch].from_config(config)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read tensors ({err})") from None
    load_strict(G, tensors, str(path))
    return G


# ------------------------------------------------------------ rosinality .pt
def load_rosinality(obj: dict[str, Any], path: Path, **options: Any) -> Generator:
    """rosinality/stylegan2-pytorch: train form (g_ema, args, ...) or converted form."""
    from .stylegan2 import StyleGAN2Generator

    sd = dict(obj["g_ema"])
    if "latent_avg" in obj and "latent_avg" not in sd:
        sd["latent_avg"] = torch.as_tensor(obj["latent_avg"]).reshape(-1)
    has_avg = "latent_avg" in sd
    G = StyleGAN2Generator.from_state_dict(sd, source=str(path), **options)
    args = obj.get("args")
    if args is not None and getattr(args, "size", G.size) != G.size:
        raise CheckpointError(
            f"{path}: args.size={args.size} disagrees with the weights (size {G.size})"
        )
    if not has_avg:
        log.info("%s: no latent_avg stored; estimating it from 4096 seeded samples", path)
        G.estimate_average_w()
    return G


# ---------------------------------------------------------------- dispatcher
def detect_format(path: Path) -> str:
    """Name of the file's format: 'safetensors', 'nvidia-pkl' or 'torch'."""
    _check_file(path)
    with open(path, "rb") as f:
        head = f.read(16)
    name = path.name.lower()
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(".pkl") or name.endswith(".pickle"):
        return "nvidia-pkl"
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":
        return "torch"
    raise CheckpointError(
        f"{path}: unknown checkpoint format (expected .safetensors, an NVIDIA .pkl network, "
        "or a PyTorch .pt file)"
    )


def load_generator(
    path: str | Path, device: str | torch.device | None = None, **options: Any
) -> Generator:
    """Load a generator from any supported file; architecture inferred from the weights.

    Options pass to the format's loader, e.g. ``avg_latent=`` (StyleGAN1 average w file),
    ``include_const_input=True`` (StyleGAN2 features), ``lr_mlp=`` (StyleGAN2 mapping).
    A preset name is resolved through the presets registry.
    """
    path_str = str(path)
    if not Path(path_str).exists() and "/" not in path_str and "." not in path_str:
        from ..presets import preset_generator_options, resolve_preset_file

        path = resolve_preset_file(path_str, "generator")
        options = {**preset_generator_options(path_str), **options}
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "safetensors":
        if options:
            raise CheckpointError(f"{path}: options {sorted(options)} do not apply to .safetensors")
        G = load_safetensors_generator(path)
    elif fmt == "nvidia-pkl":
        from .nvidia import load_nvidia_pickle

        G = load_nvidia_pickle(path, **options)
    else:
        obj = safe_torch_load(path)
        G = _from_torch_object(obj, path, **options)
    G.eval().requires_grad_(False)
    if device is not None:
        G.to(device)
    log.info("loaded %s generator from %s (%d px)", G.arch, path, G.resolution[0])
    return G


def _from_torch_object(obj: Any, path: Path, **options: Any) -> Generator:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    keys = list(obj)
    if "g_ema" in obj:
        return load_rosinality(obj, path, **options)
    if any(str(k).startswith(("g_mapping.", "g_synthesis.")) for k in keys):
        from .stylegan1 import StyleGAN1Generator

        avg = _find_avg_latent(path, options.pop("avg_latent", None))
        return StyleGAN1Generator.from_datasetgan_state_dict(obj, avg, source=str(path), **options)
    if "conv1.conv.modulation.weight" in obj:
        from .stylegan2 import StyleGAN2Generator

        return StyleGAN2Generator.from_state_dict(obj, source=str(path), **options)
    raise CheckpointError(
        f"{path}: a PyTorch file, but not a generator this library knows "
        f"(top-level keys: {', '.join(map(str, keys[:8]))}). Supported: rosinality StyleGAN2 "
        "(.pt with 'g_ema'), DatasetGAN StyleGAN1 (*.for_g_all.pt), NVIDIA .pkl, .safetensors"
    )


def _find_avg_latent(path: Path, given: Any) -> Any:
    """The StyleGAN1 truncation centre: given array/path, or the release's file beside it."""
    import numpy as np

    if given is not None and not isinstance(given, (str, Path)):
        return given
    if given is not None:
        candidates = [Path(given)]
    else:
        stem = path.name.removesuffix(".pt").removesuffix(".for_g_all")
        candidates = [
            path.with_name(f"{stem}.avg_latent_stylegan1.npy"),
            path.with_name("avg_latent_stylegan1.npy"),
        ]
    for c in candidates:
        if c.is_file():
            try:
                return np.load(c, allow_pickle=False)
            except (ValueError, OSError) as err:
                raise CheckpointError(f"{c}: cannot read the average latent ({err})") from None
    if given is not None:
        raise CheckpointError(f"{given}: average latent file not found")
    log.warning(
        "%s: no avg_latent_stylegan1.npy found beside it (looked for %s); truncation will use "
        "zeros. Pass avg_latent=PATH.",
        path,
        ", ".join(c.name for c in candidates),
    )
    return None
