"""Generators: architectures, the registry and checkpoint loading."""

from __future__ import annotations

from .base import Generator
from .checkpoints import CheckpointError, load_generator
from .stylegan1 import StyleGAN1Generator
from .stylegan2 import StyleGAN2Generator

#: Architecture registry: name -> class (``Generator.arch`` is the key).
ARCHITECTURES: dict[str, type[Generator]] = {
    StyleGAN2Generator.arch: StyleGAN2Generator,
    StyleGAN1Generator.arch: StyleGAN1Generator,
}

__all__ = [
    "ARCHITECTURES",
    "CheckpointError",
    "Generator",
    "StyleGAN1Generator",
    "StyleGAN2Generator",
    "load_generator",
]
