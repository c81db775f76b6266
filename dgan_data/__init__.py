"""dgan_data: DatasetGAN as a PyTorch dataset."""

from __future__ import annotations

from .generators import CheckpointError, Generator, StyleGAN2Generator, load_generator

__version__ = "0.1.0"

__all__ = ["CheckpointError", "Generator", "StyleGAN2Generator", "__version__", "load_generator"]
