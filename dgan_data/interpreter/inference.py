"""Factorized inference of the interpreter ensemble: labels without the full feature tensor.

Bilinear resampling is linear and acts on every channel alike, so the first layer of
every model can be applied to each feature map at its native resolution and the much
smaller result resampled and summed (see :mod:`dgan_data.interpreter.model`). This
module holds that computation as :class:`FactorizedInference`, which
:class:`~dgan_data.interpreter.model.Interpreter` inherits: the per-resolution plans, the
"rows" path (label rows in chunks of bounded memory, the CPU path), the "interpolate"
path (whole frames, no host synchronisation, optionally compiled: the CUDA path),
:meth:`~FactorizedInference.predict`, and the reference ``naive_predict``.

The mixin reads the interpreter's weights and settings (``w1``.. ``b3``, the BatchNorm
tensors, ``layout``, ``label_size``, ``crop``, ``chunk_bytes``, ``impl``, ``tf32``,
``compile_predict``) and its plan caches; it owns no state of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..uncertainty import image_scores, js_divergence
from .resample import (
    Crop,
    Layout,
    autocast_dtype,
    autocast_on,
    check_crop,
    feature_layout,
    interp_matrix,
    layout_diffs,
    resample_axis,
    taps,
)

logger = logging.getLogger(__name__)

__all__ = ["BN_EPS", "IMPLS", "FactorizedInference", "Prediction"]

BN_EPS = 1e-5
#: Default working-memory budget (bytes) of one chunk in ``predict``: CPU, CUDA.
DEFAULT_CHUNK_BYTES = 512 * 2**20
DEFAULT_CHUNK_BYTES_CUDA = 2 * 2**30
#: Cost of one element of a resampling pass, in multiply-adds (memory-bound work):
#: CPU, CUDA (tensor-core matrix products make a pass over memory relatively dearer).
_RESAMPLE_COST = 8
_RESAMPLE_COST_CUDA = 100
#: Inference paths of ``predict`` (see :meth:`Interpreter.predict`).
IMPLS = ("auto", "rows", "interpolate")


@dataclass
class Prediction:
    """Output of :meth:`Interpreter.predict` for a batch of B images, label frame (H, W).

    - ``labels`` (B, H, W) int64: argmax of the mean softmax (or the majority vote).
    - ``pixel_uncertainty`` (B, H, W) float32: Jensen-Shannon divergence of the ensemble.
    - ``image_uncertainty`` (B,) float32: mean of each image's top 10 % pixel scores.
    - ``probs`` (B, K, H, W) float32 mean softmax, only when asked for, else None.
    """

    labels: torch.Tensor
    pixel_uncertainty: torch.Tensor
    image_uncertainty: torch.Tensor
    probs: torch.Tensor | None = None


class FactorizedInference:
    """Inference methods of :class:`~dgan_data.interpreter.model.Interpreter` (see module)."""

    layout: Layout
    num_classes: int
    num_models: int

    def _check_features(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Validate a batch of feature maps against the layout, with a clear message."""
        if isinstance(features, torch.Tensor) or not isinstance(features, Sequence):
            raise TypeError(
                "features must be the generator's list of feature maps (B, C, h, w), got "
                f"{type(features).__name__}"
            )
        feats = list(features)
        bad = [i for i, f in enumerate(feats) if not isinstance(f, torch.Tensor) or f.ndim != 4]
        if bad:
            i = bad[0]
            got = tuple(feats[i].shape) if isinstance(feats[i], torch.Tensor) else type(feats[i])
            raise ValueError(f"feature map {i} must be a (B, C, h, w) tensor, got {got}")
        diffs = layout_diffs(self.layout, feature_layout(feats))
        if diffs:
            raise ValueError(
                f"feature maps do not match the {self._name()}'s layout: " + "; ".join(diffs)
            )
        batch = {f.shape[0] for f in feats}
        if len(batch) != 1:
            raise ValueError(f"feature maps have different batch sizes: {sorted(batch)}")
        devices = {f.device for f in feats}
        if len(devices) != 1 or next(iter(devices)) != self.device:
            raise ValueError(
                f"feature maps are on {sorted(map(str, devices))}, the interpreter on "
                f"{self.device}: move one of them (interp.to(device))"
            )
        return feats

    def _frame(
        self, output_size: Sequence[int] | None, crop: Sequence[int] | None
    ) -> tuple[tuple[int, int], Crop]:
        """Resolve (label frame, crop): defaults are the ones the interpreter was trained on."""
        if output_size is None:
            if self.label_size is None:
                raise ValueError(
                    "output_size is required: this interpreter has no stored label_size"
                )
            frame = self.label_size
            crop = crop if crop is not None else self.crop
        else:
            frame = (int(output_size[0]), int(output_size[1]))
        return frame, check_crop(crop, frame)

    # --------------------------------------------------------- inference
    def _plan(self, frame: tuple[int, int], crop: Crop) -> dict[str, Any]:
        """Group maps by resolution and choose, per group, the cheaper exact order.

        "project first": apply the group's slice of the first layer at native resolution,
        then resample the (M * H1)-channel result (small maps: few pixels, many channels).
        "resample first": resample the group's C_g channels, then project at the label
        resolution (maps about as large as the label frame or larger, C_g < M * H1).
        Costs count a multiply-add as 1 and an element of a resampling pass as
        ``_RESAMPLE_COST`` (memory-bound elementwise work).
        """
        key = (frame, crop, str(self.device), self.w1.data_ptr(), self.w1._version)
        cached = self._plan_cache.get(key)
        if cached is not None:
            return cached
        _, _, height, width = crop
        MH1 = self.num_models * self.hidden[0]
        k = _RESAMPLE_COST
        w1t = self.w1.reshape(MH1, -1).t()  # (C, M * H1)
        project, resample = [], []
        for g in _resolution_groups(self.layout):
            h, w = g["res"]
            C = g["channels"]
            cost_project = MH1 * (C * h * w + k * h * width + 2 * height * width)
            cost_resample = C * (k * (h * width + height * width) + MH1 * height * width)
            g["cols"] = taps(frame[1], w, crop[1], width, self.device)
            (project if cost_project <= cost_resample else resample).append(g)
        w_resample = (
            torch.cat([w1t[c0:c1] for g in resample for _, c0, c1 in g["maps"]]).contiguous()
            if resample
            else None
        )
        plan = {"project": project, "resample": resample, "w1t": w1t, "w_resample": w_resample}
        self._plan_cache = {key: plan}  # one entry: the frame a stream keeps asking for
        return plan

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

    def _bn_affine(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode BatchNorm folded to scale, shift: (M, F) each."""
        weight, bias = getattr(self, f"bn{layer}_weight"), getattr(self, f"bn{layer}_bias")
        mean, var = getattr(self, f"bn{layer}_mean"), getattr(self, f"bn{layer}_var")
        scale = weight / torch.sqrt(var + BN_EPS)
        return scale, bias - mean * scale

    def _tail_logits(self, h1: torch.Tensor) -> torch.Tensor:
        """Layers after the first Linear (without its bias): (N, M, H1) -> logits (M, N, K).

        Overwrites ``h1`` (the chunk's accumulator) to avoid allocating copies of it.
        """
        s1, t1 = self._bn_affine(1)
        s2, t2 = self._bn_affine(2)
        h = h1.add_(self.b1.to(h1.dtype)).relu_().mul_(s1).add_(t1).transpose(0, 1)
        h = torch.baddbmm(self.b2.unsqueeze(1), h, self.w2.transpose(1, 2))  # (M, N, H2)
        h = h.relu_().mul_(s2.unsqueeze(1)).add_(t2.unsqueeze(1))
        return torch.baddbmm(self.b3.unsqueeze(1), h, self.w3.transpose(1, 2))

    def _resolve_impl(self, impl: str | None) -> str:
        """The path, rows or interpolate, for an ``impl`` setting (None: ``self.impl``)."""
        impl = self.impl if impl is None else impl
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
        if impl == "auto":
            return "interpolate" if self.device.type == "cuda" else "rows"
        return impl

    def _chunks(
        self, batch: int, height: int, width: int, chunk_bytes: int | None
    ) -> tuple[int, int]:
        """(images, rows) per chunk so that one chunk's working memory fits the budget.

        Prefers whole frames (several images at once) and otherwise one image with as
        many rows as fit, since each row chunk re-reads a few boundary rows per map.
        """
        M, (h1, h2), K = self.num_models, self.hidden, self.num_classes
        per_pixel = 4 * (4 * M * h1 + 2 * M * h2 + 4 * M * K + 2 * K)
        budget = chunk_bytes or self.chunk_bytes
        if budget is None:
            cuda = self.device.type == "cuda"
            budget = DEFAULT_CHUNK_BYTES_CUDA if cuda else DEFAULT_CHUNK_BYTES
        pixels = max(1, int(budget // per_pixel))
        if pixels >= height * width:
            return max(1, min(batch, pixels // (height * width))), height
        return 1, max(1, pixels // width)

    # ------------------------------------------- inference on whole frames
    def _frames_plan(self, frame: tuple[int, int], crop: Crop) -> dict[str, Any]:
        """Plan of the interpolate path: groups of maps by resolution, each either
        "project" (first layer at native resolution, width resampled by ``F.interpolate``,
        heights of all such groups resampled and summed by one matrix product with the
        stacked height-interpolation matrix ``A``, whose last column adds the bias) or
        "resample" (its channels resampled to the frame, then projected). Cached per
        (frame, crop, device, first-layer weights); built on the device.
        """
        key = (frame, crop, str(self.device), self.w1.data_ptr(), self.w1._version)
        cached = self._frames_cache.get(key)
        if cached is not None:
            return cached
        top, _, height, width = crop
        MH1 = self.num_models * self.hidden[0]
        k = _RESAMPLE_COST_CUDA if self.device.type == "cuda" else _RESAMPLE_COST
        w1t = self.w1.detach().reshape(MH1, -1).t()  # (C, M * H1)
        project, resample = [], []
        for g in _resolution_groups(self.layout):
            h, w, C = *g["res"], g["channels"]
            cost_project = MH1 * (C * h * w + 3 * k * h * width + height * h * width)
            passes = 1 if (h, w) == frame else 2
            cost_resample = C * (passes * k * height * width + MH1 * height * width)
            g["w1"] = torch.cat([w1t[c0:c1] for _, c0, c1 in g["maps"]]).contiguous()
            (project if _project_first(cost_project, cost_resample) else resample).append(g)
        A = None
        if project:
            blocks = [
                interp_matrix(frame[0], g["res"][0], top, height, self.device) for g in project
            ]
            blocks.append(torch.ones(height, 1, device=self.device))  # the bias row of Z
            A = torch.cat(blocks, dim=1)
        plan = {
            "dtype": torch.float32,
            "project": project,
            "resample_maps": [m for g in resample for m in g["maps"]],
            "w_resample": torch.cat([g["w1"] for g in resample]) if resample else None,
            "A": A,
        }
        self._frames_cache = {key: plan}  # one entry: the frame a stream keeps asking for
        return plan

    def _frame_chunks(
        self, plan: dict[str, Any], batch: int, height: int, width: int, chunk_bytes: int | None
    ) -> tuple[int, int]:
        """(images, rows) per chunk of the interpolate path within the memory budget.

        Per image: the stacked width-resampled projections Z and the resampled channels
        X; per label row: the first-layer activations, hidden layers, logits and
        probabilities (float32 upper bounds).
        """
        M, (h1, h2), K = self.num_models, self.hidden, self.num_classes
        S = plan["A"].shape[1] if plan["A"] is not None else 0
        C = plan["w_resample"].shape[0] if plan["w_resample"] is not None else 0
        fixed = 4 * width * (S * M * h1 + 2 * height * C)
        per_row = 4 * width * (M * h1 + 2 * M * h2 + 4 * M * K + 2 * K)
        budget = self._budget(chunk_bytes)
        per_image = fixed + height * per_row
        if per_image <= budget:
            return min(batch, budget // per_image), height
        return 1, min(height, max(1, (budget - fixed) // per_row))

    def _budget(self, chunk_bytes: int | None) -> int:
        budget = chunk_bytes or self.chunk_bytes
        if budget is None:
            cuda = self.device.type == "cuda"
            budget = DEFAULT_CHUNK_BYTES_CUDA if cuda else DEFAULT_CHUNK_BYTES
        return int(budget)

    def _project_slab(
        self, feats: list[torch.Tensor], g: dict[str, Any], frame: tuple[int, int], crop: Crop
    ) -> torch.Tensor:
        """One "project" group: first layer (no bias) at native resolution, resampled
        along the width to the crop's columns: (h, B, W, M * H1), pixel-major."""
        h, w = g["res"]
        B, left, width = feats[0].shape[0], crop[1], crop[3]
        dtype = g["w1"].dtype
        x = torch.cat([feats[i].permute(2, 0, 3, 1).to(dtype) for i, _, _ in g["maps"]], dim=-1)
        p = x.reshape(-1, x.shape[-1]) @ g["w1"]  # (h * B * w, M * H1)
        MH1 = p.shape[1]
        if (w, left, width) == (frame[1], 0, frame[1]):
            return p.view(h, B, w, MH1)
        # (h * B, M * H1, 1, w) in channels-last memory: bilinear along the width only.
        p = p.view(h * B, 1, w, MH1).permute(0, 3, 1, 2)
        u = F.interpolate(p, size=(1, frame[1]), mode="bilinear", align_corners=False)
        return u.permute(0, 2, 3, 1)[:, 0, left : left + width].reshape(h, B, width, MH1)

    def _frame_pixels(
        self, feats: list[torch.Tensor], plan: dict[str, Any], frame: tuple[int, int], crop: Crop
    ) -> torch.Tensor:
        """Channels of the "resample" groups bilinearly resampled to the frame and
        cropped: (H, B, W, C), pixel-major."""
        top, left, height, width = crop
        dtype = plan["w_resample"].dtype
        views = []
        for i, _, _ in plan["resample_maps"]:
            f = feats[i].to(dtype)
            if tuple(f.shape[-2:]) != frame:
                f = F.interpolate(f, size=frame, mode="bilinear", align_corners=False)
            views.append(f[:, :, top : top + height, left : left + width].permute(2, 0, 3, 1))
        return torch.cat(views, dim=-1)

    def _folded_tail(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """Layers 2 and 3 with the eval BatchNorms folded in (BN after ReLU is affine, so
        ``W @ (s * relu(h) + t) + b = (W * s) @ relu(h) + (W @ t + b)``):
        (w2 (M, H1, H2), b2 (M, 1, H2), w3 (M, H2, K), b3 (M, 1, K)) in ``dtype``."""
        out = []
        for layer, w, b in ((1, self.w2, self.b2), (2, self.w3, self.b3)):
            s, t = self._bn_affine(layer)
            out.append((w * s.unsqueeze(1)).transpose(1, 2))
            out.append((b + (w @ t.unsqueeze(2)).squeeze(2)).unsqueeze(1))
        return tuple(t.to(dtype) for t in out)

    def _label_frames(
        self,
        feats: list[torch.Tensor],
        plan: dict[str, Any],
        frame: tuple[int, int],
        crop: Crop,
        row_step: int,
        vote: str,
        want_probs: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Interpolate path on B whole images (``feats`` already in the compute dtype's
        batch slice): labels (B, H, W), JS (B, H, W), mean probabilities (B, K, H, W)."""
        B, (_, _, height, width) = feats[0].shape[0], crop
        M, H1, K = self.num_models, self.hidden[0], self.num_classes
        dtype = plan["dtype"]
        Z = X = None
        if plan["project"]:
            slabs = [self._project_slab(feats, g, frame, crop) for g in plan["project"]]
            slabs.append(
                self.b1.detach().reshape(1, 1, 1, M * H1).to(dtype).expand(1, B, width, -1)
            )
            Z = torch.cat(slabs).flatten(1)  # (S + 1, B * W * M * H1)
        if plan["resample_maps"]:
            X = self._frame_pixels(feats, plan, frame, crop)
        w2, b2, w3, b3 = self._folded_tail(dtype)
        labels, js, probs = [], [], []
        for r0 in range(0, height, row_step):
            r1 = min(height, r0 + row_step)
            acc = None if Z is None else plan["A"][r0:r1] @ Z
            if X is not None:
                x = X[r0:r1].reshape(-1, X.shape[-1])
                w = plan["w_resample"]
                b1 = self.b1.detach().reshape(-1).to(dtype)
                acc = torch.addmm(b1, x, w) if acc is None else acc.view(-1, M * H1).addmm_(x, w)
            h = acc.view(-1, M, H1).relu_().transpose(0, 1)  # (M, N, H1), N = (row, image, col)
            h = torch.baddbmm(b2, h, w2).relu_()
            p = torch.softmax(torch.baddbmm(b3, h, w3).float(), dim=2)  # (M, N, K)
            mean_p = p.mean(dim=0)
            shape = (r1 - r0, B, width)
            js.append(js_divergence(p, model_dim=0, class_dim=2).view(shape))
            labels.append(_vote(p, mean_p, vote).view(shape))
            if want_probs:
                probs.append(mean_p.view(*shape, K))
        lab = torch.cat(labels).permute(1, 0, 2).contiguous()
        mean_probs = torch.cat(probs).permute(1, 3, 0, 2).contiguous() if want_probs else None
        return lab, torch.cat(js).permute(1, 0, 2).contiguous(), mean_probs

    def _run_frames(self, use_compile: bool, *args: Any) -> tuple[torch.Tensor, ...]:
        """``_label_frames``, through ``torch.compile`` when asked; a compilation that
        fails is reported once and the eager code runs from then on."""
        if use_compile and not self._compile_failed:
            try:
                return _compiled_label_frames()(self, *args)
            except Exception as exc:  # any failure of the compiler stack
                self._compile_failed = True
                logger.warning(
                    "torch.compile of the interpreter failed (%s: %s); running it eagerly",
                    type(exc).__name__,
                    " ".join(str(exc).split())[:400],
                )
        return self._label_frames(*args)

    def _predict_frames(
        self,
        feats: list[torch.Tensor],
        frame: tuple[int, int],
        crop: Crop,
        vote: str,
        want_probs: bool,
        chunk_bytes: int | None,
        use_compile: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The interpolate path over image chunks: (labels, JS, probs or None)."""
        dtype = autocast_dtype(self.device) or torch.float32
        plan = _plan_in_dtype(self._frames_plan(frame, crop), dtype)
        B, (_, _, height, width) = feats[0].shape[0], crop
        if B == 0:
            empty = feats[0].new_empty(0, height, width)
            probs = empty.new_empty(0, self.num_classes, height, width) if want_probs else None
            return empty.long(), empty.float(), probs
        b_step, r_step = self._frame_chunks(plan, B, height, width, chunk_bytes)
        parts = []
        with _matmul_tf32(self.device, self.tf32), _autocast_off(self.device):
            for b0 in range(0, B, b_step):
                chunk = [f[b0 : b0 + b_step] for f in feats]
                args = (chunk, plan, frame, crop, r_step, vote, want_probs)
                parts.append(self._run_frames(use_compile, *args))
        if len(parts) == 1:
            return parts[0]
        labels, js, probs = (list(t) for t in zip(*parts))
        return torch.cat(labels), torch.cat(js), torch.cat(probs) if want_probs else None

    @torch.no_grad()
    def first_layer(
        self,
        features: Sequence[torch.Tensor],
        output_size: Sequence[int] | None = None,
        crop: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """The first Linear layer (bias included) at every label pixel, computed factorized:
        (B, M, H1, H, W). Materialises the full result; meant for tests and inspection."""
        feats = self._check_features(features)
        frame, crop_ = self._frame(output_size, crop)
        B = feats[0].shape[0]
        plan = self._plan(frame, crop_)
        acc = self._project_rows(feats, plan, frame, crop_, (0, crop_[2]), (0, B))
        M, H1 = self.num_models, self.hidden[0]
        out = (acc.view(*acc.shape[:3], M, H1) + self.b1).permute(2, 3, 4, 0, 1)
        return out.contiguous()

    @torch.no_grad()
    def predict(
        self,
        features: Sequence[torch.Tensor],
        output_size: Sequence[int] | None = None,
        return_probs: bool = False,
        vote: str = "mean",
        crop: Sequence[int] | None = None,
        *,
        top_fraction: float = 0.1,
        chunk_bytes: int | None = None,
        impl: str | None = None,
        compile: bool | None = None,
    ) -> Prediction:
        """Labels and uncertainty for a batch of feature maps, by factorized inference.

        ``features``: the generator's list of maps (B, C_l, h_l, w_l), checked against
        the layout. ``output_size``: label frame (H, W); None uses the frame (and crop)
        the interpreter was trained on. ``crop``: (top, left, height, width) cut from the
        frame after upsampling. ``vote``: "mean" (argmax of the mean softmax) or
        "majority" (most frequent per-model argmax, ties to the lower class).
        ``top_fraction``: share of pixels averaged into the image score. The output is
        computed in chunks (whole images, or rows of one image) of about ``chunk_bytes``
        working memory (default ``self.chunk_bytes``, else 512 MiB on the CPU and 2 GiB
        on CUDA). Works under autocast (products in its dtype); softmax and
        Jensen-Shannon are computed in float32.

        ``impl`` (default ``self.impl``, "auto"): "rows" computes label rows in chunks
        with the bilinear taps applied by index (small working memory: the CPU path);
        "interpolate" works on whole frames: per resolution group one projection at
        native resolution, ``F.interpolate`` along the width, one matrix product that
        resamples the heights of all groups and sums them, the tails as batched
        products (folded BatchNorms), with no host synchronisation (the CUDA path);
        "auto" picks interpolate on CUDA, rows elsewhere. Both equal
        :meth:`naive_predict` to float rounding. On CUDA the interpolate path's float32
        products use TF32 when ``self.tf32`` (default True; False: full float32).
        ``compile`` (default ``self.compile_predict``): run the interpolate path through
        ``torch.compile``; if compiling fails, a warning is logged and it runs eagerly.
        """
        if vote not in ("mean", "majority"):
            raise ValueError(f"vote must be 'mean' or 'majority', got {vote!r}")
        impl = self._resolve_impl(impl)
        feats = self._check_features(features)
        frame, crop_ = self._frame(output_size, crop)
        if impl == "interpolate":
            use_compile = self.compile_predict if compile is None else bool(compile)
            labels, js, probs = self._predict_frames(
                feats, frame, crop_, vote, return_probs, chunk_bytes, use_compile
            )
            return Prediction(labels, js, image_scores(js, top_fraction), probs)
        _, _, height, width = crop_
        B, M, K, H1 = feats[0].shape[0], self.num_models, self.num_classes, self.hidden[0]
        plan = self._plan(frame, crop_)
        dev = self.device
        labels = torch.empty(B, height, width, dtype=torch.int64, device=dev)
        js = torch.empty(B, height, width, dtype=torch.float32, device=dev)
        probs = torch.empty(B, K, height, width, device=dev) if return_probs else None
        b_step, r_step = self._chunks(B, height, width, chunk_bytes)
        for b0 in range(0, B, b_step):
            b1 = min(B, b0 + b_step)
            for r0 in range(0, height, r_step):
                r1 = min(height, r0 + r_step)
                acc = self._project_rows(feats, plan, frame, crop_, (r0, r1), (b0, b1))
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
        return Prediction(
            labels=labels,
            pixel_uncertainty=js,
            image_uncertainty=image_scores(js, top_fraction),
            probs=probs,
        )

    def to_modules(self) -> list[nn.Sequential]:
        """The ensemble as M plain ``nn.Sequential`` MLPs (eval mode, copies of the weights)."""
        h1, h2 = self.hidden
        models = []
        for m in range(self.num_models):
            seq = nn.Sequential(
                nn.Linear(self.in_channels, h1),
                nn.ReLU(),
                nn.BatchNorm1d(h1, eps=BN_EPS),
                nn.Linear(h1, h2),
                nn.ReLU(),
                nn.BatchNorm1d(h2, eps=BN_EPS),
                nn.Linear(h2, self.num_classes),
            ).to(self.device)
            with torch.no_grad():
                for idx, (w, b) in zip((0, 3, 6), ((self.w1, self.b1), (self.w2, self.b2))):
                    seq[idx].weight.copy_(w[m])
                    seq[idx].bias.copy_(b[m])
                seq[6].weight.copy_(self.w3[m])
                seq[6].bias.copy_(self.b3[m])
                for idx, layer in ((2, 1), (5, 2)):
                    seq[idx].weight.copy_(getattr(self, f"bn{layer}_weight")[m])
                    seq[idx].bias.copy_(getattr(self, f"bn{layer}_bias")[m])
                    seq[idx].running_mean.copy_(getattr(self, f"bn{layer}_mean")[m])
                    seq[idx].running_var.copy_(getattr(self, f"bn{layer}_var")[m])
            models.append(seq.eval())
        return models

    @torch.no_grad()
    def naive_predict(
        self,
        features: Sequence[torch.Tensor],
        output_size: Sequence[int] | None = None,
        return_probs: bool = False,
        vote: str = "mean",
        crop: Sequence[int] | None = None,
        *,
        top_fraction: float = 0.1,
    ) -> Prediction:
        """Reference path (tests, benchmarks): upsample every map with ``F.interpolate``,
        crop, concatenate all C channels per pixel and run each model as a plain
        ``nn.Sequential``. Needs B x H x W x C floats: 5.3 GB per 512 px face image."""
        if vote not in ("mean", "majority"):
            raise ValueError(f"vote must be 'mean' or 'majority', got {vote!r}")
        feats = self._check_features(features)
        frame, (top, left, height, width) = self._frame(output_size, crop)
        B = feats[0].shape[0]
        up = [
            F.interpolate(f.float(), size=frame, mode="bilinear", align_corners=False)[
                :, :, top : top + height, left : left + width
            ]
            for f in feats
        ]
        x = torch.cat(up, dim=1).permute(0, 2, 3, 1).reshape(-1, self.in_channels)
        del up
        p = torch.stack([torch.softmax(mlp(x).float(), dim=1) for mlp in self.to_modules()])
        mean_p = p.mean(dim=0)  # (N, K)
        shape = (B, height, width)
        js = js_divergence(p, model_dim=0, class_dim=2).view(shape)
        if vote == "mean":
            labels = mean_p.argmax(dim=1).view(shape)
        else:
            votes = F.one_hot(p.argmax(dim=2), self.num_classes).sum(dim=0)
            labels = votes.argmax(dim=1).view(shape)
        probs = mean_p.view(*shape, -1).permute(0, 3, 1, 2).contiguous() if return_probs else None
        return Prediction(labels, js, image_scores(js, top_fraction), probs)


# ------------------------------------------------------------------ module helpers
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


def _project_first(cost_project: int, cost_resample: int) -> bool:
    """Whether a group of the interpolate path is projected before resampling."""
    return cost_project < cost_resample


def _plan_in_dtype(plan: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """The interpolate plan with its matrices in ``dtype`` (cached inside the plan)."""
    if dtype == torch.float32:
        return plan
    cast = plan.setdefault("_cast", {})
    if dtype not in cast:
        cast[dtype] = {
            **{k: v for k, v in plan.items() if k != "_cast"},
            "dtype": dtype,
            "project": [{**g, "w1": g["w1"].to(dtype)} for g in plan["project"]],
            "w_resample": None if plan["w_resample"] is None else plan["w_resample"].to(dtype),
            "A": None if plan["A"] is None else plan["A"].to(dtype),
        }
    return cast[dtype]


def _vote(p: torch.Tensor, mean_p: torch.Tensor, vote: str) -> torch.Tensor:
    """Labels from per-model probabilities p (M, N, K): argmax of the mean, or the most
    frequent per-model argmax (ties to the lower class)."""
    if vote == "mean":
        return mean_p.argmax(dim=1)
    ones = torch.ones(p.shape[1], p.shape[0], device=p.device)
    return torch.zeros_like(mean_p).scatter_add_(1, p.argmax(dim=2).t(), ones).argmax(dim=1)


@contextmanager
def _matmul_tf32(device: torch.device, enabled: bool) -> Iterator[None]:
    """On CUDA, let float32 matrix products use TF32 (``enabled``) or not, restoring the
    caller's setting afterwards. Where the caller chose with torch's newer
    ``fp32_precision`` API (which refuses to be mixed with the older flag), their choice
    stands."""
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    try:
        old = matmul.allow_tf32
        matmul.allow_tf32 = enabled
    except RuntimeError:
        yield
        return
    try:
        yield
    finally:
        matmul.allow_tf32 = old


def _autocast_off(device: torch.device) -> AbstractContextManager[Any]:
    """Autocast disabled for ``device`` (a no-op where it has no autocast, e.g. meta)."""
    try:
        return torch.autocast(device.type, enabled=False)
    except RuntimeError:
        return nullcontext()


_COMPILED: dict[str, Callable[..., Any]] = {}


def _compiled_label_frames() -> Callable[..., Any]:
    """``FactorizedInference._label_frames`` through ``torch.compile`` (made once, on first use)."""
    fn = _COMPILED.get("label_frames")
    if fn is None:
        fn = _COMPILED["label_frames"] = torch.compile(FactorizedInference._label_frames)
    return fn
