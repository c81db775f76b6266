"""Pixel context of an interpreter: the generated image and a neighbourhood of the
finest maps, beside the generator's features.

DatasetGAN's MLP sees the generator's features of one pixel. Two optional inputs give it
more to tell small parts and borders apart (measured on the toy world, see the README):

- the generated image as one more map (``image_layout`` = its (channels, height,
  width)): the pixel's colour, which the features hold only indirectly;
- ``context`` = R: every map at the largest resolution (the finest features, and the
  image when it is used) also enters shifted by each offset within R pixels, replicate
  padding at the borders, so the first Linear layer works as a (2R + 1)^2 convolution
  there. Coarser maps are already smooth over several pixels and are left alone.

Everything downstream (the feature store, both inference paths) sees the expanded maps
as ordinary maps of the same resolutions, so nothing else needs to know.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..conventions import as_index
from .resample import Layout

__all__ = [
    "MAX_CONTEXT",
    "check_context",
    "expand_maps",
    "input_layout",
    "map_layout",
    "shifted_copies",
]

#: Largest neighbourhood radius: (2 * 3 + 1)^2 = 49 copies of the finest maps.
MAX_CONTEXT = 3


def check_context(context: object) -> int:
    """``context`` as a Python int in [0, MAX_CONTEXT] (numpy ints too), else ValueError."""
    radius = as_index(context)
    if radius is None:
        raise ValueError(f"context must be an int in [0, {MAX_CONTEXT}], got {context!r:.80}")
    if not 0 <= radius <= MAX_CONTEXT:
        raise ValueError(f"context must be in [0, {MAX_CONTEXT}], got {radius}")
    return radius


def map_layout(layout: Layout, image_layout: Sequence[int] | None) -> Layout:
    """The maps ``predict`` receives: the generator's, then the image when it is used."""
    maps = [tuple(int(v) for v in entry) for entry in layout]
    if image_layout is not None:
        maps.append(tuple(int(v) for v in image_layout))
    return maps  # type: ignore[return-value]


def _finest(layout: Layout) -> tuple[int, int]:
    return max(((h, w) for _, h, w in layout), key=lambda hw: hw[0] * hw[1])


def input_layout(layout: Layout, image_layout: Sequence[int] | None, context: int) -> Layout:
    """The maps the MLP reads: :func:`map_layout`, then one map of shifted copies per map
    at the largest resolution when ``context`` > 0."""
    maps = map_layout(layout, image_layout)
    if context == 0:
        return maps
    finest = _finest(maps)
    copies = (2 * context + 1) ** 2 - 1
    return maps + [(c * copies, h, w) for c, h, w in maps if (h, w) == finest]


def expand_maps(maps: Sequence[torch.Tensor], context: int) -> list[torch.Tensor]:
    """``maps`` ((B, C, h, w) or (C, h, w) each) plus, for every map at the largest
    resolution, its copies shifted by each offset (dy, dx) within ``context`` (the centre
    left out; dy major, then dx; channels within an offset), replicate-padded."""
    maps = list(maps)
    if context == 0:
        return maps
    finest = _finest([(0, *m.shape[-2:]) for m in maps])
    offsets = [
        (dy, dx)
        for dy in range(-context, context + 1)
        for dx in range(-context, context + 1)
        if dy or dx
    ]
    return maps + [shifted_copies(m, offsets) for m in maps if tuple(m.shape[-2:]) == finest]


def shifted_copies(m: torch.Tensor, offsets: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``m`` ((B, C, h, w) or (C, h, w)) shifted by each (dy, dx) of ``offsets``, the copies
    concatenated along channels in that order; replicate padding at the borders."""
    if not offsets:
        raise ValueError("shifted_copies needs at least one (dy, dx) offset, got none")
    h, w = m.shape[-2:]
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    batched = m if m.ndim == 4 else m.unsqueeze(0)
    # replicate padding is not implemented for every dtype on every device: pad in fp32
    padded = F.pad(batched.float(), [pad] * 4, mode="replicate").to(m.dtype)
    copies = [padded[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w] for dy, dx in offsets]
    out = torch.cat(copies, dim=-3)
    return out if m.ndim == 4 else out[0]
