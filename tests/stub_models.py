"""Segmentation models with known outputs, for tests of evaluation and metrics."""

from __future__ import annotations

import torch
from torch import nn


class Constant(nn.Module):
    """Always predicts class ``k``."""

    def __init__(self, num_classes: int, k: int) -> None:
        super().__init__()
        self.num_classes, self.k = num_classes, k
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(images.shape[0], self.num_classes, *images.shape[-2:])
        logits[:, self.k] = 1
        return logits
