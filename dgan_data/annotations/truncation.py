"""Truncation arithmetic of stored latents: the centre's rows, the lerp, the check."""

from __future__ import annotations

import logging

import torch

from .format import AnnotationError

logger = logging.getLogger(__name__)


def _module_device(G: torch.nn.Module) -> torch.device:
    for t in G.parameters():
        return t.device
    for t in G.buffers():
        return t.device
    return torch.device("cpu")


def _center_rows(center: torch.Tensor, num_ws: int) -> torch.Tensor:
    """The truncation centre as (num_ws, w_dim).

    DatasetGAN's ``avg_latent_stylegan1.npy`` always holds 18 rows, and generators
    below 1024 px read only the first ``num_ws`` of them; fewer rows is an error.
    """
    if center.ndim == 1:
        return center.expand(num_ws, -1)
    if center.shape[0] < num_ws:
        raise AnnotationError(
            [f"truncation centre has {center.shape[0]} rows, the generator has {num_ws} ws"]
        )
    return center[:num_ws]


def _truncate_towards(
    w: torch.Tensor, center: torch.Tensor, psi: float, cutoff: int | None
) -> torch.Tensor:
    """Lerp w (B, num_ws, w_dim) towards ``center`` on the first ``cutoff`` layers."""
    if center.shape[-1] != w.shape[-1]:  # a raw broadcast error from torch otherwise
        raise AnnotationError(
            [
                f"truncation_center has shape {tuple(center.shape)}, the generator's w is "
                f"{tuple(w.shape[1:])} (give (w_dim,) or (num_ws or more, w_dim))"
            ]
        )
    center = _center_rows(center, w.shape[1]).to(device=w.device, dtype=w.dtype)
    truncated = center + psi * (w - center)
    if cutoff is None or cutoff >= w.shape[1]:
        return truncated
    layer = torch.arange(w.shape[1], device=w.device).view(1, -1, 1)
    return torch.where(layer < cutoff, truncated, w)


def _compare_centers(G: torch.nn.Module, center: torch.Tensor) -> None:
    """Warn when G's truncation centre differs from the one the annotations used."""
    try:
        avg = G.average_w().detach().float().cpu()
    except NotImplementedError:
        return
    num_ws = int(G.num_ws)
    try:
        c = _center_rows(center.float(), num_ws)
    except AnnotationError:
        c = None
    avg = _center_rows(avg, num_ws) if avg.ndim == 1 or avg.shape[0] >= num_ws else avg
    if c is None or avg.shape != c.shape or not torch.allclose(avg, c, atol=1e-4, rtol=1e-4):
        logger.warning(
            "the generator's average w differs from the annotations' truncation centre; "
            "annotated images use the stored centre, new samples will use the generator's"
        )
