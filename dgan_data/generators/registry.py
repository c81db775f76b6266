"""File -> generator: format detection and the one entry point for generator files.

Knows architectures and file formats only; preset names are resolved one layer up
(``dgan_data.presets.load_generator``). The registry maps architecture names to classes;
an unknown name lists the valid ones.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .base import Generator
from .files import (
    CONFIG_KEY,
    CheckpointError,
    check_file,
    load_strict,
    read_safetensors_metadata,
    safe_torch_load,
)
from .nvidia import load_nvidia_pickle
from .stylegan1 import StyleGAN1Generator
from .stylegan2 import StyleGAN2Generator

log = logging.getLogger(__name__)

__all__ = ["ARCHITECTURES", "detect_format", "get_architecture", "load_generator_file"]

#: Architecture registry: name -> class (``Generator.arch`` is the key).
ARCHITECTURES: dict[str, type[Generator]] = {
    StyleGAN2Generator.arch: StyleGAN2Generator,
    StyleGAN1Generator.arch: StyleGAN1Generator,
}


def get_architecture(name: str, source: str = "<config>") -> type[Generator]:
    """The generator class registered as ``name``; an unknown name lists the valid ones."""
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise CheckpointError(
            f"{source}: unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[name]


# ------------------------------------------------------------ our own format
def load_safetensors_generator(path: Path) -> Generator:
    """A generator written by ``Generator.save`` (config in the header)."""
    meta = read_safetensors_metadata(path)
    if CONFIG_KEY not in meta:
        raise CheckpointError(
            f"{path}: .safetensors file without a dgan_data generator config in its header; "
            "write generators with Generator.save()"
        )
    try:
        info = json.loads(meta[CONFIG_KEY])
        arch, config = info["arch"], info["config"]
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: corrupt generator config in header ({err})") from None
    G = get_architecture(arch, str(path)).from_config(config)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: cannot read tensors ({err})") from None
    load_strict(G, tensors, str(path))
    return G


# ------------------------------------------------------------ rosinality .pt
def load_rosinality(obj: dict[str, Any], path: Path, **options: Any) -> Generator:
    """rosinality/stylegan2-pytorch: train form (g_ema, args, ...) or converted form."""
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
    check_file(path)
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


def load_generator_file(
    path: str | Path, device: str | torch.device | None = None, **options: Any
) -> Generator:
    """Load a generator from a file of any supported format; architecture from the weights.

    Options pass to the format's loader, e.g. ``avg_latent=`` (StyleGAN1 average w file),
    ``include_const_input=True`` (StyleGAN2 features), ``lr_mlp=`` (StyleGAN2 mapping).
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "safetensors":
        if options:
            raise CheckpointError(f"{path}: options {sorted(options)} do not apply to .safetensors")
        G = load_safetensors_generator(path)
    elif fmt == "nvidia-pkl":
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
        avg = _find_avg_latent(path, options.pop("avg_latent", None))
        return StyleGAN1Generator.from_datasetgan_state_dict(obj, avg, source=str(path), **options)
    if "conv1.conv.modulation.weight" in obj:
        return StyleGAN2Generator.from_state_dict(obj, source=str(path), **options)
    raise CheckpointError(
        f"{path}: a PyTorch file, but not a generator this library knows "
        f"(top-level keys: {', '.join(map(str, keys[:8]))}). Supported: rosinality StyleGAN2 "
        "(.pt with 'g_ema'), DatasetGAN StyleGAN1 (*.for_g_all.pt), NVIDIA .pkl, .safetensors"
    )


def _find_avg_latent(path: Path, given: Any) -> Any:
    """The StyleGAN1 truncation centre: given array/path, or the release's file beside it."""
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
