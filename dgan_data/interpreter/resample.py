"""Bilinear resampling rules, feature layouts and label-frame crops.

Everything here is the mathematics the interpreter shares between inference and
training: the taps of ``F.interpolate(mode="bilinear", align_corners=False)`` along
one axis (equal to ``grid_sample(align_corners=False, padding_mode="border")`` at the
output pixel centres, for up- and down-sampling alike), applying them, the feature
layout of a generator, and the (top, left, height, width) crop of a label frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..conventions import MAX_LABEL_SIDE, as_index

__all__ = [
    "MAX_LABEL_SIDE",
    "Crop",
    "Layout",
    "autocast_dtype",
    "autocast_on",
    "check_crop",
    "check_label_size",
    "feature_layout",
    "interp_matrix",
    "layout_diffs",
    "resample_axis",
    "sample_features_grid",
    "taps",
]

Layout = list[tuple[int, int, int]]
Crop = tuple[int, int, int, int]


def _int_items(value: Any) -> list[int | None] | None:
    """The items of a sequence, or of a 1-d tensor or array, as ints (None where one is
    not an integer); None for anything else (a string, a set, a scalar). ``check_crop``
    and ``check_label_size`` share it, so both accept the same containers."""
    if isinstance(value, (str, bytes)):
        return None
    if isinstance(value, Sequence) or getattr(value, "ndim", None) == 1:
        return [as_index(v) for v in value]
    return None


def check_label_size(label_size: Any, name: str = "label_size") -> tuple[int, int] | None:
    """``(H, W)`` of ints in [1, MAX_LABEL_SIDE] (numpy ints too), or None; else a clear
    ValueError naming ``name`` (floats are refused, never truncated)."""
    if label_size is None:
        return None
    sides = _int_items(label_size)
    if sides is None:
        raise ValueError(f"{name} must be (height, width), got {label_size!r:.80}")
    if len(sides) != 2 or any(v is None or v < 1 for v in sides):
        raise ValueError(f"{name} must be two positive ints (height, width), got {label_size!r}")
    if max(sides) > MAX_LABEL_SIDE:  # type: ignore[type-var]
        raise ValueError(f"{name} {tuple(sides)} exceeds {MAX_LABEL_SIDE} px per side")
    return int(sides[0]), int(sides[1])  # type: ignore[arg-type]


def feature_layout(source: Any) -> Layout:
    """The feature layout [(channels, h, w), ...] of a generator, a layout or feature maps.

    Accepts an object with ``feature_channels`` and ``feature_resolutions`` (a
    generator), a sequence of (c, h, w) triples, or a sequence of feature-map tensors
    (B, C, h, w) / (C, h, w).
    """
    if hasattr(source, "feature_channels") and hasattr(source, "feature_resolutions"):
        chans, res = list(source.feature_channels), list(source.feature_resolutions)
        if len(chans) != len(res):
            raise ValueError(
                f"generator lists {len(chans)} feature channels but {len(res)} resolutions"
            )
        return [(int(c), int(r[0]), int(r[1])) for c, r in zip(chans, res)]
    if isinstance(source, (str, bytes)) or not isinstance(source, Sequence):
        raise TypeError(
            "expected a generator (feature_channels, feature_resolutions), a list of "
            f"(channels, h, w) or a list of feature maps, got {type(source).__name__}"
        )
    out: Layout = []
    for i, item in enumerate(source):
        if isinstance(item, torch.Tensor):
            if item.ndim not in (3, 4):
                raise ValueError(
                    f"feature map {i} must be (B, C, h, w) or (C, h, w), got {tuple(item.shape)}"
                )
            c, h, w = item.shape[-3:]
        else:
            try:
                c, h, w = (int(v) for v in item)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"layout entry {i} is not (channels, h, w): {item!r}") from exc
        out.append((int(c), int(h), int(w)))
    return out


def layout_diffs(expected: Layout, got: Layout) -> list[str]:
    """Human-readable differences between two feature layouts (empty when equal)."""
    diffs = []
    if len(expected) != len(got):
        diffs.append(f"number of feature maps is {len(got)}, expected {len(expected)}")
    for i, ((ce, he, we), (cg, hg, wg)) in enumerate(zip(expected, got)):
        if ce != cg:
            diffs.append(f"map {i} has {cg} channels, expected {ce}")
        if (he, we) != (hg, wg):
            diffs.append(f"map {i} has resolution {hg}x{wg}, expected {he}x{we}")
    return diffs


def check_crop(crop: Sequence[int] | None, frame: tuple[int, int]) -> Crop:
    """Validate ``crop=(top, left, height, width)`` inside ``frame``; None = whole frame."""
    if crop is None:
        return (0, 0, int(frame[0]), int(frame[1]))
    values = _int_items(crop) or []
    if len(values) != 4 or any(v is None for v in values):
        raise ValueError(f"crop must be 4 ints (top, left, height, width), got {crop!r:.80}")
    top, left, height, width = values  # type: ignore[misc]
    if top < 0 or left < 0 or height < 1 or width < 1:
        raise ValueError(f"crop {crop!r} must have top, left >= 0 and a positive size")
    if top + height > frame[0] or left + width > frame[1]:
        raise ValueError(
            f"crop (top={top}, left={left}, height={height}, width={width}) does not fit in "
            f"the label frame {tuple(frame)} (H, W)"
        )
    return (top, left, height, width)


def _source_taps(
    out_size: int, in_size: int, start: int, count: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(i0, i1, lam1) of output pixels ``start .. start+count-1``, computed in float64 on
    ``device`` (the rule of :func:`taps`)."""
    dst = torch.arange(start, start + count, dtype=torch.float64, device=device)
    src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp_max(in_size - 1)
    lam1 = src - i0.double()
    i1 = (i0 + 1).clamp_max(in_size - 1)
    return i0, i1, lam1


def taps(
    out_size: int, in_size: int, start: int, count: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear source taps of output pixels ``start .. start+count-1`` along one axis.

    The rule of ``F.interpolate(mode="bilinear", align_corners=False)`` for an axis
    resized from ``in_size`` to ``out_size`` (up or down): source coordinate
    ``(dst + 0.5) * in/out - 0.5`` clamped at 0, taps floor and floor + 1 (clamped to
    the last pixel). This is also ``grid_sample(align_corners=False,
    padding_mode="border")`` at the output pixel centres. Returns (i0, i1, lam0, lam1).
    """
    i0, i1, lam1 = _source_taps(out_size, in_size, start, count, torch.device("cpu"))
    return (i0.to(device), i1.to(device), (1.0 - lam1).float().to(device), lam1.float().to(device))


def interp_matrix(
    out_size: int, in_size: int, start: int, count: int, device: torch.device
) -> torch.Tensor:
    """The taps of :func:`taps` as a dense (count, in_size) float32 matrix: row i holds
    the weights of output pixel ``start + i`` (each row sums to 1).

    Built on ``device`` itself (no host-to-device copy; MPS, which lacks float64, builds
    it on the CPU), so ``matrix @ x`` resamples the leading axis of ``x``.
    """
    work = torch.device("cpu") if device.type == "mps" else device
    i0, i1, lam1 = _source_taps(out_size, in_size, start, count, work)
    m = torch.zeros(count, in_size, dtype=torch.float64, device=work)
    m.scatter_add_(1, i0.unsqueeze(1), (1.0 - lam1).unsqueeze(1))
    m.scatter_add_(1, i1.unsqueeze(1), lam1.unsqueeze(1))
    return m.float().to(device)


def resample_axis(
    x: torch.Tensor, taps: tuple[torch.Tensor, ...], dim: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply one axis' bilinear taps (from :func:`taps`) along ``dim`` of ``x``:
    ``lam0 * x[i0] + lam1 * x[i1]``. Fastest when the dims after ``dim`` are contiguous
    (whole rows are copied)."""
    i0, i1, lam0, lam1 = taps
    shape = [1] * x.ndim
    shape[dim] = -1
    a = x.index_select(dim, i0).mul_(lam0.view(shape).to(x.dtype))
    b = x.index_select(dim, i1).mul_(lam1.view(shape).to(x.dtype))
    if out is None:
        return a.add_(b)
    return torch.add(a, b, out=out)


def autocast_on(device: torch.device) -> bool:
    """Whether autocast is active for ``device``'s type (works on old and new torch)."""
    try:
        return bool(torch.is_autocast_enabled(device.type))
    except RuntimeError:  # a device type without autocast (meta)
        return False
    except TypeError:  # torch < 2.4
        if device.type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype autocast computes in for ``device``'s type, or None when it is off."""
    if not autocast_on(device):
        return None
    try:
        return torch.get_autocast_dtype(device.type)
    except AttributeError:  # torch < 2.4
        if device.type == "cpu":
            return torch.get_autocast_cpu_dtype()
        return torch.get_autocast_gpu_dtype()


def sample_features_grid(
    maps: Sequence[torch.Tensor],
    image_index: torch.Tensor,
    ys: torch.Tensor,
    xs: torch.Tensor,
    output_size: tuple[int, int],
    crop: Sequence[int] | None = None,
) -> torch.Tensor:
    """Pixel feature vectors at label pixels (image_index, ys, xs) via ``F.grid_sample``.

    ``maps``: feature maps (N, C_l, h_l, w_l) of N images; label pixel (y, x) of the
    (optionally cropped) label frame ``output_size`` is sampled at its pixel centre in
    normalized coordinates with bilinear, align_corners=False, padding_mode="border",
    which equals ``F.interpolate(map, output_size, mode="bilinear",
    align_corners=False)`` at that pixel, for up- and down-sampling alike. Returns
    (P, sum C_l) float32. Reference for the training gather (which uses the same taps
    on float16 channels-last storage without converting whole maps).
    """
    H, W = int(output_size[0]), int(output_size[1])
    top, left, _, _ = check_crop(crop, (H, W))
    gy = (2.0 * (ys.double() + top) + 1.0) / H - 1.0
    gx = (2.0 * (xs.double() + left) + 1.0) / W - 1.0
    out = []
    for f in maps:
        grid = torch.stack([gx, gy], dim=-1).to(device=f.device, dtype=torch.float32)
        cols = []
        for n in image_index.unique().tolist():
            sel = (image_index == n).nonzero().squeeze(1)
            g = grid[sel.to(grid.device)].view(1, 1, -1, 2)
            s = F.grid_sample(
                f[n : n + 1].float(), g, mode="bilinear", padding_mode="border", align_corners=False
            )
            cols.append((sel, s[0, :, 0].t()))
        res = torch.empty(len(ys), f.shape[1], dtype=torch.float32, device=f.device)
        for sel, vals in cols:
            res[sel.to(f.device)] = vals
        out.append(res)
    return torch.cat(out, dim=1)
