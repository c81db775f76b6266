"""Generators: the protocol, the architectures, safe file reading and the file registry.

Knows nothing of labels, presets or streams. ``dgan_data.load_generator`` (preset
names or paths) is the user's entry point; :func:`load_generator_file` takes a path.
"""

from __future__ import annotations

from .base import Generator
from .files import CheckpointError
from .registry import (
    ARCHITECTURES,
    LOADER_OPTIONS,
    detect_format,
    get_architecture,
    load_generator_file,
)
from .stylegan1 import StyleGAN1Generator
from .stylegan2 import StyleGAN2Generator
from .torch_files import safe_torch_load

__all__ = [
    "ARCHITECTURES",
    "LOADER_OPTIONS",
    "CheckpointError",
    "Generator",
    "StyleGAN1Generator",
    "StyleGAN2Generator",
    "detect_format",
    "get_architecture",
    "load_generator_file",
    "safe_torch_load",
]
