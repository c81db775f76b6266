"""Generators: architectures, the registry and checkpoint loading."""

from __future__ import annotations

from .base import Generator
from .checkpoints import CheckpointError, load_generator
from .stylegan2 import StyleGAN2Generator

ARCHITECTURES: dict[str, type[Generator]] = {"stylegan2": StyleGAN2Generator}

try:  # the StyleGAN1 module registers itself once present
    from .stylegan1 import StyleGAN1Generator

    ARCHITECTURES["stylegan1"] = StyleGAN1Generator
except ImportError:  # pragma: no cover - during development only
    pass

__all__ = [
    "ARCHITECTURES",
    "CheckpointError",
    "Generator",
    "StyleGAN2Generator",
    "load_generator",
]
