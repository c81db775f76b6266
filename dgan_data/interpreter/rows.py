"""The "rows" inference path of the interpreter: label rows in chunks of bounded memory.

Per chunk of label rows, the first layer is applied to the feature rows the chunk needs
at their native resolution and resampled by bilinear taps applied by index (or, for
maps about as large as the frame, the channels are resampled first), then the tail of
every model runs on the chunk's pixels. Small working memory and no large
intermediate: the CPU path. A mixin of :class:`~.inference.FactorizedInference`, which
supplies the weights and the shared helpers (``_budget``, ``_tail_logits``).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import torch

from ..conventions import keyword_hints
from ..uncertainty import js_divergence
from .resample import Crop, Layout, autocast_on, resample_axis, taps

#: Default working-memory budget (bytes) of one chunk in ``predict``: CPU, CUDA.
DEFAULT_CHUNK_BYTES = 512 * 2**20
DEFAULT_CHUNK_BYTES_CUDA = 2 * 2**30
#: Cost of one element of a resampling pass, in multiply-adds (memory-bound work), CPU.
_RESAMPLE_COST = 8


@keyword_hints
class RowsInference:
    """The rows path (see module). Reads the interpreter's attributes declared here."""

    input_layout: Layout
    num_classes: int
    num_models: int
    hidden: tuple[int, int]
    device: torch.device
    w1: torch.Tensor
    _plan_cache: dict[Any, dict[str, Any]]

    def _plan(self, frame: tuple[int, int], crop: Crop) -> dict[str, Any]:
        """Group maps by resolution and choose, per group, the cheaper exact order.

        "project first": apply the group's slice of the first layer at native resolution,
        then resample the (M * H1)-channel result (small maps: few pixels, many channels).
        "resample first": resample the group's C_g channels, then project at the label
        resolution (maps about as large as the label frame or larger, C_g < M * H1).
        Costs count a multiply-add as 1 and an element of a resampling pass as
        ``_RESAMPLE_COST`` (memory-bound elementwise work).

        The geometry is cached per (frame, crop, device); the first-layer weights are
        read from ``w1`` on every call (views; a copy only for the resample-first rows
        when they are not one block), so no update of ``w1`` can leave a stale copy.
        """
        geometry = cached_geometry(self, "_plan_cache", frame, crop, self._plan_geometry)
        w1t = first_layer_rows(self)
        ranges = [(c0, c1) for g in geometry["resample"] for _, c0, c1 in g["maps"]]
        return {**geometry, "w1t": w1t, "w_resample": weight_rows(w1t, ranges)}

    def _plan_geometry(self, frame: tuple[int, int], crop: Crop) -> dict[str, Any]:
        """The weight-free part of :meth:`_plan`: "project" and "resample" groups."""
        _, _, height, width = crop
        MH1 = self.num_models * self.hidden[0]
        k = _RESAMPLE_COST
        project, resample = [], []
        for g in _resolution_groups(self.input_layout):
            h, w = g["res"]
            C = g["channels"]
            cost_project = MH1 * (C * h * w + k * h * width + 2 * height * width)
            cost_resample = C * (k * (h * width + height * width) + MH1 * height * width)
            g["cols"] = taps(frame[1], w, crop[1], width, self.device)
            (project if cost_project <= cost_resample else resample).append(g)
        return {"project": project, "resample": resample}

    def _project_rows(
        self,
        feats: list[torch.Tensor],
        plan: dict[str, Any],
        frame: tuple[int, int],
        crop: Crop,
        rows: tuple[int, int],
        images: tuple[int, int],
    ) -> torch.Tensor:
        """First Linear layer (no bias) for label rows ``rows`` of images ``images``
        (half-open ranges): (r, W, b, M * H1) float32, i.e. pixel-major.

        Project-first groups: per group, the slab of source rows the chunk needs is
        projected at native resolution (one matrix product), resampled along the width
        (bilinear taps), and stacked; one matrix product with the stacked
        height-interpolation weights then resamples and sums all these groups at once.
        Resample-first groups: their channels are resampled to the chunk and projected
        by one matrix product into the same accumulator.
        """
        (r0, r1), (b0, b1) = rows, images
        r, B, W = r1 - r0, b1 - b0, crop[3]
        MH1 = self.num_models * self.hidden[0]
        dev = self.device
        autocast = autocast_on(dev)
        w1t = plan["w1t"]

        def slab(g: dict[str, Any]) -> tuple[int, int, tuple[torch.Tensor, ...]]:
            """Source rows lo..hi-1 that the chunk needs, and taps relative to lo."""
            i0, i1, l0, l1 = taps(frame[0], g["res"][0], crop[0] + r0, r, torch.device("cpu"))
            lo, hi = int(i0[0]), int(i1[-1]) + 1  # taps are monotonic
            return lo, hi, tuple(t.to(dev) for t in (i0 - lo, i1 - lo, l0, l1))

        def native(i: int, lo: int, hi: int) -> torch.Tensor:
            """Rows lo..hi-1 of map i as (hs, w, b, c), contiguous."""
            return feats[i][b0:b1, :, lo:hi].permute(2, 3, 0, 1).contiguous()

        if plan["project"]:
            slabs = [slab(g) for g in plan["project"]]
            S = sum(hi - lo for lo, hi, _ in slabs)
            Z = torch.empty(S, W, B, MH1, dtype=torch.float32, device=dev)
            A = torch.zeros(r, S, dtype=torch.float32, device=dev)
            at = torch.arange(r, device=dev)
            off = 0
            for g, (lo, hi, (i0, i1, l0, l1)) in zip(plan["project"], slabs):
                hs, w = hi - lo, g["res"][1]
                y = None
                for i, c0, c1 in g["maps"]:
                    f = native(i, lo, hi).view(hs * w * B, c1 - c0)
                    f = f if autocast else f.to(w1t.dtype)
                    p = f @ w1t[c0:c1]
                    y = p if y is None else y + p
                resample_axis(y.float().view(hs, w, B, MH1), g["cols"], 1, out=Z[off : off + hs])
                A.index_put_((at, i0 + off), l0, accumulate=True)
                A.index_put_((at, i1 + off), l1, accumulate=True)
                off += hs
            acc = (A @ Z.view(S, -1)).float().view(r, W, B, MH1)
            del Z
        else:
            acc = torch.zeros(r, W, B, MH1, dtype=torch.float32, device=dev)
        if plan["resample"]:
            C = plan["w_resample"].shape[0]
            X = torch.empty(r, W, B, C, dtype=torch.float32, device=dev)
            off = 0
            for g in plan["resample"]:
                lo, hi, row_taps = slab(g)
                for i, c0, c1 in g["maps"]:
                    f = resample_axis(native(i, lo, hi).float(), g["cols"], 1)  # (hs, W, b, c)
                    resample_axis(f, row_taps, 0, out=X[..., off : off + c1 - c0])
                    off += c1 - c0
            flat = acc.view(-1, MH1)
            if autocast:
                flat += (X.view(-1, C) @ plan["w_resample"]).float()
            else:
                flat.addmm_(X.view(-1, C).to(w1t.dtype), plan["w_resample"])
        return acc

    def _chunks(
        self, batch: int, height: int, width: int, chunk_bytes: int | None
    ) -> tuple[int, int]:
        """(images, rows) per chunk so that one chunk's working memory fits the budget.

        Prefers whole frames (several images at once) and otherwise one image with as
        many rows as fit, since each row chunk re-reads a few boundary rows per map.
        """
        M, (h1, h2), K = self.num_models, self.hidden, self.num_classes
        per_pixel = 4 * (4 * M * h1 + 2 * M * h2 + 4 * M * K + 2 * K)
        pixels = max(1, self._budget(chunk_bytes) // per_pixel)
        if pixels >= height * width:
            return max(1, min(batch, pixels // (height * width))), height
        return 1, max(1, pixels // width)

    def _predict_rows(
        self,
        feats: list[torch.Tensor],
        frame: tuple[int, int],
        crop: Crop,
        vote: str,
        want_probs: bool,
        chunk_bytes: int | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The rows path over chunks of images and rows: (labels, JS, probs or None)."""
        _, _, height, width = crop
        B, M, K, H1 = feats[0].shape[0], self.num_models, self.num_classes, self.hidden[0]
        plan = self._plan(frame, crop)
        dev = self.device
        labels = torch.empty(B, height, width, dtype=torch.int64, device=dev)
        js = torch.empty(B, height, width, dtype=torch.float32, device=dev)
        probs = torch.empty(B, K, height, width, device=dev) if want_probs else None
        b_step, r_step = self._chunks(B, height, width, chunk_bytes)
        for b0 in range(0, B, b_step):
            b1 = min(B, b0 + b_step)
            for r0 in range(0, height, r_step):
                r1 = min(height, r0 + r_step)
                acc = self._project_rows(feats, plan, frame, crop, (r0, r1), (b0, b1))
                logits = self._tail_logits(acc.view(-1, M, H1))
                del acc
                p = torch.softmax(logits.float(), dim=2)  # (M, N, K), N = (row, col, image)
                mean_p = p.mean(dim=0)
                shape = (r1 - r0, width, b1 - b0)
                u = js_divergence(p, model_dim=0, class_dim=2)
                js[b0:b1, r0:r1] = u.view(shape).permute(2, 0, 1)
                lab = _vote(p, mean_p, vote)
                labels[b0:b1, r0:r1] = lab.view(shape).permute(2, 0, 1)
                if probs is not None:
                    probs[b0:b1, :, r0:r1] = mean_p.view(*shape, K).permute(2, 3, 0, 1)
        return labels, js, probs


def cached_geometry(
    owner: Any,
    cache: str,
    frame: tuple[int, int],
    crop: Crop,
    build: Callable[[tuple[int, int], Crop], dict[str, Any]],
) -> dict[str, Any]:
    """The weight-free plan of ``frame`` and ``crop`` on ``owner``'s device, from its
    one-entry cache attribute ``cache`` (the frame a stream keeps asking for), else
    ``build(frame, crop)`` stored there."""
    key = (frame, crop, str(owner.device))
    geometry = getattr(owner, cache).get(key)
    if geometry is None:
        geometry = build(frame, crop)
        setattr(owner, cache, {key: geometry})
    return geometry


def first_layer_rows(owner: Any) -> torch.Tensor:
    """``owner.w1`` as (C, M * H1) rows, a view of the current weights."""
    return owner.w1.detach().reshape(owner.num_models * owner.hidden[0], -1).t()


def weight_rows(w1t: torch.Tensor, ranges: list[tuple[int, int]]) -> torch.Tensor | None:
    """Rows ``ranges`` of the first layer ``w1t`` (C, M * H1) stacked: a view when they
    form one block (the usual case), else a copy made now, from the current weights."""
    if not ranges:
        return None
    if all(a[1] == b[0] for a, b in pairwise(ranges)):
        return w1t[ranges[0][0] : ranges[-1][1]]
    return torch.cat([w1t[c0:c1] for c0, c1 in ranges])


def _resolution_groups(layout: Layout) -> list[dict[str, Any]]:
    """Maps grouped by resolution, in order of first appearance: each group is
    {"res": (h, w), "maps": [(map index, first channel, end channel)], "channels": C}."""
    by_res: dict[tuple[int, int], dict[str, Any]] = {}
    c0 = 0
    for i, (c, h, w) in enumerate(layout):
        g = by_res.setdefault((h, w), {"res": (h, w), "maps": [], "channels": 0})
        g["maps"].append((i, c0, c0 + c))
        g["channels"] += c
        c0 += c
    return list(by_res.values())


def _vote(p: torch.Tensor, mean_p: torch.Tensor, vote: str) -> torch.Tensor:
    """Labels from per-model probabilities p (M, N, K): argmax of the mean, or the most
    frequent per-model argmax (ties to the lower class)."""
    if vote == "mean":
        return mean_p.argmax(dim=1)
    ones = torch.ones(p.shape[1], p.shape[0], device=p.device)
    return torch.zeros_like(mean_p).scatter_add_(1, p.argmax(dim=2).t(), ones).argmax(dim=1)
