"""The "interpolate" inference path of the interpreter: whole frames, no host sync.

Per resolution group, one projection at native resolution, ``F.interpolate`` along the
width, one matrix product that resamples the heights of all groups and sums them, and
the models' tails as batched products with the BatchNorms folded in. No host
synchronisation, optionally compiled: the CUDA path. A mixin of
:class:`~.inference.FactorizedInference`, which supplies the weights and the shared
helpers (``_budget``, ``_bn_affine``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from ..conventions import keyword_hints
from ..uncertainty import js_divergence
from .resample import Crop, Layout, autocast_dtype, interp_matrix
from .rows import (
    _RESAMPLE_COST,
    _resolution_groups,
    _vote,
    cached_geometry,
    first_layer_rows,
    weight_rows,
)

logger = logging.getLogger(__name__)

#: Cost of one element of a resampling pass on CUDA, in multiply-adds (tensor-core
#: matrix products make a pass over memory relatively dearer than on the CPU).
_RESAMPLE_COST_CUDA = 100


@keyword_hints
class FramesInference:
    """The interpolate path (see module). Reads the interpreter's attributes declared here."""

    input_layout: Layout
    num_classes: int
    num_models: int
    hidden: tuple[int, int]
    device: torch.device
    tf32: bool
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    w3: torch.Tensor
    b3: torch.Tensor
    _frames_cache: dict[Any, dict[str, Any]]
    _compile_failed: bool

    def _frames_plan(self, frame: tuple[int, int], crop: Crop) -> dict[str, Any]:
        """Plan of the interpolate path: groups of maps by resolution, each either
        "project" (first layer at native resolution, width resampled by ``F.interpolate``,
        heights of all such groups resampled and summed by one matrix product with the
        stacked height-interpolation matrix ``A``, whose last column adds the bias) or
        "resample" (its channels resampled to the frame, then projected). The geometry
        (groups, ``A``) is cached per (frame, crop, device) and built on the device; the
        first-layer weights are read from ``w1`` on every call (views where the rows
        form one block), so no update of ``w1`` can leave a stale copy.
        """
        geometry = cached_geometry(self, "_frames_cache", frame, crop, self._frames_geometry)
        w1t = first_layer_rows(self)
        ranges = [[(c0, c1) for _, c0, c1 in g["maps"]] for g in geometry["project"]]
        return {
            **geometry,
            "project": [
                {**g, "w1": weight_rows(w1t, r)} for g, r in zip(geometry["project"], ranges)
            ],
            "w_resample": weight_rows(w1t, [(c0, c1) for _, c0, c1 in geometry["resample_maps"]]),
        }

    def _frames_geometry(self, frame: tuple[int, int], crop: Crop) -> dict[str, Any]:
        """The weight-free part of :meth:`_frames_plan`."""
        top, _, height, width = crop
        MH1 = self.num_models * self.hidden[0]
        k = _RESAMPLE_COST_CUDA if self.device.type == "cuda" else _RESAMPLE_COST
        project, resample = [], []
        for g in _resolution_groups(self.input_layout):
            h, w, C = *g["res"], g["channels"]
            cost_project = MH1 * (C * h * w + 3 * k * h * width + height * h * width)
            passes = 1 if (h, w) == frame else 2
            cost_resample = C * (passes * k * height * width + MH1 * height * width)
            (project if _project_first(cost_project, cost_resample) else resample).append(g)
        A = None
        if project:
            blocks = [
                interp_matrix(frame[0], g["res"][0], top, height, self.device) for g in project
            ]
            blocks.append(torch.ones(height, 1, device=self.device))  # the bias row of Z
            A = torch.cat(blocks, dim=1)
        return {
            "dtype": torch.float32,
            "project": project,
            "resample_maps": [m for g in resample for m in g["maps"]],
            "A": A,
            "_cast_A": {},  # A in autocast dtypes, made on first use
        }

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


def _project_first(cost_project: int, cost_resample: int) -> bool:
    """Whether a group of the interpolate path is projected before resampling."""
    return cost_project < cost_resample


def _plan_in_dtype(plan: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """The interpolate plan with its matrices in ``dtype``: the weights are cast on every
    call (a cached cast could go stale), ``A`` (geometry) once per cached plan."""
    if dtype == torch.float32:
        return plan
    A, cast = plan["A"], plan["_cast_A"]  # the cached geometry's dict
    if A is not None and dtype not in cast:
        cast[dtype] = A.to(dtype)
    return {
        **plan,
        "dtype": dtype,
        "project": [{**g, "w1": g["w1"].to(dtype)} for g in plan["project"]],
        "w_resample": None if plan["w_resample"] is None else plan["w_resample"].to(dtype),
        "A": None if A is None else cast[dtype],
    }


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
    """``FramesInference._label_frames`` through ``torch.compile`` (made once, on first use)."""
    fn = _COMPILED.get("label_frames")
    if fn is None:
        fn = _COMPILED["label_frames"] = torch.compile(FramesInference._label_frames)
    return fn
