"""Fit an interpreter that ignores the generator's coarsest feature maps.

The first maps of a StyleGAN (4 px, then 8 px) encode pose and layout over the whole
image; with 16 annotations an MLP can lean on them and generalise worse to other poses
(measured in the README's *Interpreter variants*, ``drop=K``). Fitting on maps whose
first K are zeroed, then zeroing the first layer's weights on those channels, gives an
ordinary interpreter file that labels the generator's unchanged maps exactly as the fit
labeled the zeroed ones (the first layer is linear, and the coarse maps come first in
the input layout, before the image and the neighbourhood copies). Used by
``interpreter_variants.py`` (``drop=K``) and ``build_preset.py`` (``--drop-coarse K``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dgan_data import Interpreter


def drop_coarse(maps: Sequence[torch.Tensor], count: int) -> list[torch.Tensor]:
    """``maps`` with the first ``count`` (the coarsest generator layers) zeroed."""
    return [torch.zeros_like(m) if j < count else m for j, m in enumerate(maps)]


def zero_first_inputs(interp: Interpreter, channels: int) -> None:
    """Zero ``interp``'s first-layer weights on its first ``channels`` input channels, in
    place: it then ignores those inputs."""
    with torch.no_grad():
        interp.w1[:, :, :channels] = 0


def fold_drop(interp: Interpreter, maps: Sequence[torch.Tensor], count: int) -> None:
    """Zero ``interp``'s first-layer weights on the channels of the first ``count`` of
    ``maps`` (one image's maps, (C, h, w) each, in the interpreter's input order), in
    place: fed those maps unchanged, it then labels as it did when they were zeroed."""
    zero_first_inputs(interp, sum(int(m.shape[0]) for m in maps[:count]))


class CoarseDropped:
    """A generator whose ``synthesize`` returns its first ``count`` feature maps zeroed;
    everything else (mapping, layout, fingerprint, parameters) is the generator's own."""

    def __init__(self, G: Any, count: int) -> None:
        if not 0 <= count < len(G.feature_channels):
            raise ValueError(
                f"drop-coarse must lie in 0..{len(G.feature_channels) - 1} (it must leave a "
                f"feature map), got {count}"
            )
        self._G, self._count = G, count

    def synthesize(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        img, feats = self._G.synthesize(*args, **kwargs)
        return img, drop_coarse(feats, self._count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._G, name)


def fit_without_coarse(G: Any, annotations: Any, count: int, **fit_kwargs: Any) -> Interpreter:
    """``Interpreter.fit(G, annotations, **fit_kwargs)`` on features whose first ``count``
    maps are zeroed, with the first layer's weights on those channels zeroed after: an
    interpreter for ``G``'s ordinary maps that never reads the coarse ones."""
    interp = Interpreter.fit(CoarseDropped(G, count), annotations, **fit_kwargs)
    zero_first_inputs(interp, sum(G.feature_channels[:count]))
    interp.training_info["drop_coarse"] = count
    return interp
