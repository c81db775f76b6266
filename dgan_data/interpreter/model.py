"""The interpreter: an ensemble of per-pixel MLPs on the generator's feature maps.

Each model is Linear(C, H1) - ReLU - BatchNorm1d - Linear(H1, H2) - ReLU - BatchNorm1d -
Linear(H2, K) applied to every pixel's feature vector, H1/H2 = 128/32 for K < 32 classes
and 256/128 otherwise (DatasetGAN's ``pixel_classifier``). A pixel's feature vector is
the concatenation of every feature map upsampled bilinearly (align_corners=False) to the
label frame. All models' weights live in batched tensors (first layer ``w1`` is
(M, H1, C)), so the whole ensemble runs as one batched computation.

Two facts keep this cheap (see DESIGN.md):

- **Factorized inference.** Bilinear resampling is linear and acts on every channel
  alike, so ``W1 @ concat_l(up(f_l)) = sum_l up(W1_l @ f_l)``. :meth:`Interpreter.predict`
  applies each map's slice of the first layer at the map's native resolution (or, for a
  map about as large as the label frame, resamples the few channels first, whichever is
  cheaper), resamples the (M * H1)-channel result and sums. Two paths do this: "rows"
  (label rows in chunks of bounded memory, the taps applied by index: the CPU path) and
  "interpolate" (whole frames: widths by ``F.interpolate``, the heights of all groups by
  one matrix product, no host synchronisation: the CUDA path). The sum(C_l)-channel
  full-resolution tensor is never built. :meth:`Interpreter.naive_predict` is the
  reference path that does build it.
- **Training without materialising pixel features.** :meth:`Interpreter.fit_features`
  keeps the annotated images' feature maps at native resolution (float16 by default)
  and gathers, for each step, only the sampled pixels' vectors with the bilinear taps
  of ``F.interpolate(mode="bilinear", align_corners=False)`` (equal to ``grid_sample``
  at the label pixel centres with ``padding_mode="border"``).

Interpreters are saved as ``.safetensors`` with JSON metadata in the header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import IGNORE_INDEX, check_finite_number
from ..seeds import derive_seed
from ..uncertainty import image_scores, js_divergence
from . import io as interpreter_io
from .fit import FeatureStore, as_masks, train_ensemble
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

__all__ = ["Interpreter", "Prediction", "default_hidden"]

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
#: Default working-memory budget (bytes) of one chunk in ``predict``: CPU, CUDA.
DEFAULT_CHUNK_BYTES = 512 * 2**20
DEFAULT_CHUNK_BYTES_CUDA = 2 * 2**30
#: Cost of one element of a resampling pass, in multiply-adds (memory-bound work):
#: CPU, CUDA (tensor-core matrix products make a pass over memory relatively dearer).
_RESAMPLE_COST = 8
_RESAMPLE_COST_CUDA = 100
#: Inference paths of ``predict`` (see :meth:`Interpreter.predict`).
IMPLS = ("auto", "rows", "interpolate")
#: Training steps when ``max_steps`` is None (10.2M pixel draws per model at 512 a step).
DEFAULT_MAX_STEPS = 20_000
#: Seed purposes (the second part of ``derive_seed``): initial weights, pixel draws.
SEED_INIT, SEED_PIXELS = 0, 1

FeatureSource = Sequence[Sequence[torch.Tensor]] | Callable[[int], Sequence[torch.Tensor]]


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


# --------------------------------------------------------------------- helpers
def default_hidden(num_classes: int) -> tuple[int, int]:
    """DatasetGAN's hidden sizes: (128, 32) for fewer than 32 classes, else (256, 128)."""
    return (128, 32) if num_classes < 32 else (256, 128)


# ------------------------------------------------------------------ the model
class Interpreter(nn.Module):
    """Ensemble of ``num_models`` per-pixel MLPs with batched weights.

    ``feature_layout``: [(channels, h, w), ...] of the generator's feature maps, forward
    order (see :func:`feature_layout`). ``label_size``: the (H, W) frame the features
    are upsampled to; ``crop``: optional (top, left, height, width) cut out of that frame
    after upsampling (DatasetGAN's car: 512 x 512 frame, rows 64..447). Both are the
    defaults of :meth:`predict`. ``seed`` draws the initial weights (model m from its
    own seed derived from (seed, m)): Linear weights N(0, 0.02), biases 0, BatchNorm
    1 / 0, as DatasetGAN's ``init_weights``.
    """

    def __init__(
        self,
        feature_layout: Sequence[tuple[int, int, int]],
        num_classes: int,
        num_models: int = 10,
        hidden: Sequence[int] | None = None,
        *,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        label_size: tuple[int, int] | None = None,
        crop: Sequence[int] | None = None,
        fingerprint: str | None = None,
        seed: int = 0,
        _allocate: bool = True,
    ) -> None:
        super().__init__()
        layout = [(int(c), int(h), int(w)) for c, h, w in feature_layout]
        if not layout or any(v < 1 for entry in layout for v in entry):
            raise ValueError(f"feature_layout must be non-empty positive (c, h, w), got {layout}")
        if num_classes < 1 or num_models < 1:
            raise ValueError(
                f"num_classes and num_models must be >= 1, got {num_classes}, {num_models}"
            )
        h1, h2 = (int(v) for v in (hidden if hidden is not None else default_hidden(num_classes)))
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.layout: Layout = layout
        self.num_classes = int(num_classes)
        self.num_models = int(num_models)
        self.hidden = (h1, h2)
        self.class_names = list(class_names) if class_names is not None else None
        self.palette = [list(map(int, c)) for c in palette] if palette is not None else None
        self.label_size = (int(label_size[0]), int(label_size[1])) if label_size else None
        self.crop = check_crop(crop, self.label_size) if crop is not None and label_size else None
        if crop is not None and not label_size:
            raise ValueError("a crop needs the label_size (the frame it is cut from)")
        self.fingerprint = fingerprint
        self.training_info: dict[str, Any] = {}
        self.source: str | None = None  # file it was loaded from, for messages
        #: Working-memory budget of one ``predict`` chunk; None: 512 MiB (CPU), 2 GiB (CUDA).
        self.chunk_bytes: int | None = None
        #: Default inference path of ``predict``: "auto" (interpolate on CUDA, else rows).
        self.impl = "auto"
        #: Whether the interpolate path's float32 matrix products may use TF32 on CUDA.
        self.tf32 = True
        #: Whether ``predict`` runs the interpolate path through ``torch.compile``.
        self.compile_predict = False
        self._compile_failed = False
        self._plan_cache: dict[Any, dict[str, Any]] = {}
        self._frames_cache: dict[Any, dict[str, Any]] = {}

        # ``_allocate=False`` (used by ``load``) builds the tensors on the meta device: the
        # file's tensors replace them, so nothing is allocated that the file cannot fill.
        shapes = interpreter_io.expected_shapes(
            self.num_models, self.hidden, self.in_channels, self.num_classes
        )
        device = None if _allocate else torch.device("meta")
        for name, shape in shapes.items():
            init = torch.ones if name.endswith(("_weight", "_var")) else torch.zeros
            tensor = init(shape, device=device)
            if name.endswith(("_mean", "_var")):
                self.register_buffer(name, tensor)
            else:
                setattr(self, name, nn.Parameter(tensor))
        if _allocate:
            self.reset_parameters(seed)

    # ---------------------------------------------------------------- basics
    @property
    def in_channels(self) -> int:
        """Total feature channels C (5,088 for the 1024 px StyleGAN1 face generator)."""
        return sum(c for c, _, _ in self.layout)

    @property
    def device(self) -> torch.device:
        return self.w1.device

    def reset_parameters(self, seed: int = 0) -> None:
        """Draw every model's weights from its own CPU generator seeded by (seed, m)."""
        with torch.no_grad():
            for m in range(self.num_models):
                g = torch.Generator().manual_seed(derive_seed(seed, SEED_INIT, m))
                for w in (self.w1, self.w2, self.w3):
                    w[m].copy_(torch.randn(w.shape[1:], generator=g) * 0.02)
            for b in (self.b1, self.b2, self.b3, self.bn1_bias, self.bn2_bias, self.bn1_mean):
                b.zero_()
            for t in (self.bn1_weight, self.bn2_weight, self.bn1_var, self.bn2_var):
                t.fill_(1.0)
            self.bn2_mean.zero_()

    def extra_repr(self) -> str:
        return (
            f"models={self.num_models}, in_channels={self.in_channels}, hidden={self.hidden}, "
            f"classes={self.num_classes}, maps={len(self.layout)}, label_size={self.label_size}, "
            f"crop={self.crop}"
        )

    def _name(self) -> str:
        return f"interpreter {self.source}" if self.source else "interpreter"

    # ------------------------------------------------------- compatibility
    def check_compatible(self, G_or_layout: Any, fingerprint: str | None = None) -> None:
        """Raise ValueError naming every difference between our feature layout and
        ``G_or_layout``'s (a generator, a layout or feature maps): number of maps, which
        map's channels or resolution, and the generator fingerprint.

        The fingerprint is compared when both sides have one: ``fingerprint`` if given,
        else ``G_or_layout.fingerprint()`` when it is a generator (hashes its weights).
        """
        other = feature_layout(G_or_layout)
        diffs = layout_diffs(self.layout, other)
        has_fp = callable(getattr(G_or_layout, "fingerprint", None))
        if fingerprint is None and has_fp and self.fingerprint:
            fingerprint = G_or_layout.fingerprint()
        if fingerprint and self.fingerprint and fingerprint != self.fingerprint:
            diffs.append(
                f"generator fingerprint is {fingerprint}, the interpreter was trained on "
                f"{self.fingerprint}"
            )
        if diffs:
            raise ValueError(f"{self._name()} does not match the generator: " + "; ".join(diffs))

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

    # ---------------------------------------------------------- training
    def _bn_train(self, h: torch.Tensor, layer: int, active: torch.Tensor) -> torch.Tensor:
        """Training-mode BatchNorm1d per model over the pixel batch: h (M, P, F)."""
        weight, bias = getattr(self, f"bn{layer}_weight"), getattr(self, f"bn{layer}_bias")
        mean = h.mean(dim=1, keepdim=True)
        var = h.var(dim=1, unbiased=False, keepdim=True)
        out = (h - mean) * torch.rsqrt(var + BN_EPS) * weight.unsqueeze(1) + bias.unsqueeze(1)
        with torch.no_grad():
            P = h.shape[1]
            run_mean, run_var = getattr(self, f"bn{layer}_mean"), getattr(self, f"bn{layer}_var")
            new_mean = run_mean * (1 - BN_MOMENTUM) + mean.squeeze(1) * BN_MOMENTUM
            unbiased = var.squeeze(1) * (P / max(P - 1, 1))
            new_var = run_var * (1 - BN_MOMENTUM) + unbiased * BN_MOMENTUM
            act = active.unsqueeze(1)
            run_mean.copy_(torch.where(act, new_mean, run_mean))
            run_var.copy_(torch.where(act, new_var, run_var))
        return out

    def train_logits(self, x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Training forward of every model on its own pixels: x (M, P, C) -> (M, P, K)."""
        h = torch.baddbmm(self.b1.unsqueeze(1), x, self.w1.transpose(1, 2))
        h = self._bn_train(torch.relu(h), 1, active)
        h = torch.baddbmm(self.b2.unsqueeze(1), h, self.w2.transpose(1, 2))
        h = self._bn_train(torch.relu(h), 2, active)
        return torch.baddbmm(self.b3.unsqueeze(1), h, self.w3.transpose(1, 2))

    @classmethod
    def fit_features(
        cls,
        features: FeatureSource,
        masks: torch.Tensor | Sequence[Any],
        num_classes: int,
        num_models: int = 10,
        *,
        output_size: Sequence[int] | None = None,
        crop: Sequence[int] | None = None,
        hidden: Sequence[int] | None = None,
        batch_size: int = 512,
        lr: float = 1e-3,
        max_steps: int | None = None,
        min_steps: int = 1_000,
        eval_every: int = 200,
        patience: int = 5,
        min_delta: float = 0.01,
        seed: int = 0,
        device: torch.device | str | None = None,
        store_device: torch.device | str | None = None,
        store_dtype: torch.dtype = torch.float16,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        fingerprint: str | None = None,
        class_balance: float = 0.0,
        progress: bool = True,
    ) -> Interpreter:
        """Train an ensemble on annotated images without materialising pixel features.

        ``features``: per annotated image its list of feature maps ((C, h, w) or
        (1, C, h, w), native resolution, generator order), or a callable ``i -> maps``
        called once per image (so the caller never holds all images' features at full
        precision; e.g. regenerate them from the latents). They are stored in
        ``store_dtype`` (float16) channels-last on ``store_device`` (default: ``device``).
        ``masks``: (N, H, W) class ids in [0, num_classes) with 255 = ignore, in the label
        frame: ``output_size`` (default: the masks' size), cropped by ``crop`` (top, left,
        height, width) when given, in which case the masks have the crop's size.

        Each step, every model draws ``batch_size`` annotated pixels uniformly with
        replacement from its own generator seeded by (seed, m) (its own data order; the
        paper uses batches of 64, larger batches run much faster with the same Adam lr
        1e-3), their feature vectors are gathered with bilinear taps at the pixel
        centres (= ``F.interpolate(bilinear, align_corners=False)`` of the whole map at
        those pixels), and the models take one Adam step on their cross-entropy.

        Stopping rule, per model: every ``eval_every`` steps the mean training loss of
        the window is compared with the model's best window; an improvement is a
        relative drop of more than ``min_delta``. After ``patience`` windows without
        improvement, and not before ``min_steps``, the model stops (its weights and
        BatchNorm statistics are frozen); training ends when all have stopped or after
        ``max_steps`` (defaults: 512 px per model and step, at most 20,000 steps = 10.2M
        pixel draws per model, about 2.4 passes over 16 images of 512 x 512).

        ``class_balance``: 0 draws annotated pixels uniformly; up to 1 draws a class first
        (probability proportional to its pixel count to the power ``1 - class_balance``)
        so rare classes are seen more often (see ``fit.train_ensemble``).

        Memory: the stored maps (133 MB per 1024 px face image in float16) plus
        M x batch_size x C float32 per step; never pixels x channels for all images.
        Deterministic given ``seed`` (and the device's arithmetic).
        """
        device = torch.device(device) if device is not None else None
        masks_t = as_masks(masks)
        N = masks_t.shape[0]
        if N == 0:
            raise ValueError("no annotated images: masks is empty")
        get = features if callable(features) else None
        if get is None:
            if isinstance(features, torch.Tensor) or not isinstance(features, Sequence):
                raise TypeError(
                    "features must be a list (one entry per image) of lists of feature maps, "
                    f"or a callable i -> feature maps; got {type(features).__name__}"
                )
            if len(features) != N:
                raise ValueError(f"{len(features)} feature lists for {N} masks")
        if max_steps is None:
            max_steps = DEFAULT_MAX_STEPS
        for name, v in (("batch_size", batch_size), ("max_steps", max_steps)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        check_finite_number(lr, "lr", low=0.0)
        if eval_every < 1 or patience < 1:
            raise ValueError("eval_every and patience must be >= 1")

        def image_maps(i: int) -> list[torch.Tensor]:
            maps = get(i) if get is not None else features[i]
            out = []
            for l_, f in enumerate(maps):
                if not isinstance(f, torch.Tensor):
                    raise TypeError(f"image {i}: feature map {l_} is not a tensor")
                if f.ndim == 4 and f.shape[0] == 1:
                    f = f[0]
                if f.ndim != 3:
                    raise ValueError(
                        f"image {i}: feature map {l_} must be (C, h, w) or (1, C, h, w), "
                        f"got {tuple(f.shape)}"
                    )
                out.append(f)
            return out

        first = image_maps(0)
        layout = feature_layout(first)
        if device is None:
            device = first[0].device
        store_device = torch.device(store_device) if store_device is not None else device
        height, width = masks_t.shape[1:]
        if output_size is None:
            if crop is not None:
                raise ValueError("a crop needs output_size (the frame the crop is cut from)")
            frame = (height, width)
        else:
            frame = (int(output_size[0]), int(output_size[1]))
        crop_ = check_crop(crop, frame)
        if (crop_[2], crop_[3]) != (height, width):
            raise ValueError(
                f"masks are {height} x {width} but the label frame {frame} with crop {crop} "
                f"gives {crop_[2]} x {crop_[3]}"
            )
        bad = (masks_t != IGNORE_INDEX) & ((masks_t < 0) | (masks_t >= num_classes))
        if bad.any():
            n, y, x = (int(v) for v in bad.nonzero()[0])
            raise ValueError(
                f"mask {n} has class id {int(masks_t[n, y, x])} at pixel (y={y}, x={x}); "
                f"ids must be in [0, {num_classes}) or {IGNORE_INDEX} (ignore)"
            )

        model = cls(
            layout,
            num_classes,
            num_models,
            hidden,
            class_names=class_names,
            palette=palette,
            label_size=frame,
            crop=crop,
            fingerprint=fingerprint,
            seed=seed,
        ).to(device)
        t_start = time.perf_counter()
        store = FeatureStore(layout, N, frame, crop_, store_dtype, store_device)
        logger.info(
            "storing native-resolution features of %d images: %.1f MB (%s on %s)",
            N,
            store.nbytes() / 2**20,
            store_dtype,
            store_device,
        )
        pending = {0: first}  # image 0's maps were read to learn the layout
        del first
        store.fill(lambda i: pending.pop(i, None) or image_maps(i), progress=progress)

        info = train_ensemble(
            model,
            store,
            masks_t,
            batch_size=batch_size,
            lr=lr,
            max_steps=max_steps,
            min_steps=min_steps,
            eval_every=eval_every,
            patience=patience,
            min_delta=min_delta,
            seed=seed,
            class_balance=class_balance,
            progress=progress,
        )
        model.training_info = {
            "num_images": N,
            "batch_size": batch_size,
            "lr": lr,
            "optimizer": "adam",
            "max_steps": max_steps,
            "min_steps": min_steps,
            "eval_every": eval_every,
            "patience": patience,
            "min_delta": min_delta,
            "seed": seed,
            "store_dtype": str(store_dtype).replace("torch.", ""),
            "store_seconds": round(time.perf_counter() - t_start - info.pop("train_seconds_"), 3),
            "feature_store_bytes": store.nbytes(),
            **info,
        }
        model.zero_grad(set_to_none=True)
        return model.eval()

    @classmethod
    def fit(
        cls,
        G: Any,
        annotations: Any,
        num_models: int = 10,
        *,
        device: torch.device | str | None = None,
        store_dtype: torch.dtype = torch.float16,
        **fit_kwargs: Any,
    ) -> Interpreter:
        """Train an interpreter for generator ``G`` on an annotation set.

        Coupling (all that is read from ``annotations``):

        - ``.w`` (N, num_ws, w_dim) tensor, or a ``.latents_w(G)`` method returning it;
        - ``.masks`` (N, H, W) uint8/int64 class ids, 255 = ignore;
        - ``.class_names`` (K names: K = number of classes);
        - optional ``.noise`` (default "const"), ``.palette``, ``.crop`` = (top, left,
          height, width) cut from the frame ``.label_size`` (default ``G.resolution`` when
          cropping, else the masks' size).

        From ``G``: ``synthesize(w, noise=...)``, ``feature_channels`` /
        ``feature_resolutions``, ``resolution`` and ``fingerprint()``. Images are
        regenerated one at a time and only their native-resolution maps are kept
        (``store_dtype`` float16: 133 MB per image for the 1024 px face generator), then
        :meth:`fit_features` runs with ``fit_kwargs``.
        """
        w = getattr(annotations, "w", None)
        if w is None:
            if not callable(getattr(annotations, "latents_w", None)):
                raise TypeError("annotations need a .w tensor or a .latents_w(G) method")
            w = annotations.latents_w(G)
        w = torch.as_tensor(w)
        masks = as_masks(annotations.masks)
        if w.shape[0] != masks.shape[0]:
            raise ValueError(f"annotations have {w.shape[0]} latents but {masks.shape[0]} masks")
        class_names = list(annotations.class_names)
        noise = getattr(annotations, "noise", None) or "const"
        crop = getattr(annotations, "crop", None)
        label_size = getattr(annotations, "label_size", None)
        if label_size is None:
            label_size = tuple(G.resolution) if crop is not None else tuple(masks.shape[1:])
        if device is None:
            params = list(G.parameters()) if hasattr(G, "parameters") else []
            device = params[0].device if params else torch.device("cpu")
        device = torch.device(device)

        def regenerate(i: int) -> list[torch.Tensor]:
            with torch.no_grad():
                _, feats = G.synthesize(w[i : i + 1].to(device), noise=noise)
            return [f[0].to(store_dtype) for f in feats]

        fingerprint = G.fingerprint() if callable(getattr(G, "fingerprint", None)) else None
        model = cls.fit_features(
            regenerate,
            masks,
            len(class_names),
            num_models,
            output_size=label_size,
            crop=crop,
            class_names=class_names,
            palette=getattr(annotations, "palette", None),
            fingerprint=fingerprint,
            device=device,
            store_dtype=store_dtype,
            **fit_kwargs,
        )
        model.check_compatible(G, fingerprint=fingerprint)
        # The latents' sampling settings: the stream draws new samples the same way.
        model.training_info["truncation_psi"] = getattr(annotations, "truncation_psi", None)
        model.training_info["truncation_cutoff"] = getattr(annotations, "truncation_cutoff", None)
        model.training_info["noise"] = noise
        return model

    # ----------------------------------------------------------- save/load
    def metadata(self) -> dict[str, Any]:
        """Everything but the tensors, as saved in the file header."""
        return {
            "format": interpreter_io.FORMAT_NAME,
            "format_version": interpreter_io.FORMAT_VERSION,
            "num_models": self.num_models,
            "num_classes": self.num_classes,
            "hidden": list(self.hidden),
            "class_names": self.class_names,
            "palette": self.palette,
            "feature_layout": [list(entry) for entry in self.layout],
            "fingerprint": self.fingerprint,
            "label_size": list(self.label_size) if self.label_size else None,
            "crop": list(self.crop) if self.crop else None,
            "training": self.training_info,
        }

    def save(self, path: str | Path) -> Path:
        """Write the weights as ``.safetensors``, metadata as JSON in its header (atomic)."""
        return interpreter_io.write_interpreter_file(
            Path(path), dict(self.state_dict()), self.metadata()
        )

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str | None = None) -> Interpreter:
        """Read an interpreter written by :meth:`save`; errors name the file and the problem.

        The header and the declared tensor shapes are checked before anything is
        allocated; non-finite weights are refused.
        """
        meta, tensors = interpreter_io.read_interpreter_file(path)
        model = cls(
            [tuple(e) for e in meta["feature_layout"]],
            meta["num_classes"],
            meta["num_models"],
            meta["hidden"],
            class_names=meta.get("class_names"),
            palette=meta.get("palette"),
            label_size=tuple(meta["label_size"]) if meta.get("label_size") else None,
            crop=meta.get("crop"),
            fingerprint=meta.get("fingerprint"),
            _allocate=False,
        )
        model.load_state_dict(tensors, assign=True)
        model.training_info = meta.get("training") or {}
        model.source = str(path)
        if device is not None:
            model = model.to(device)
        return model.eval()


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
    """``Interpreter._label_frames`` through ``torch.compile`` (made once, on first use)."""
    fn = _COMPILED.get("label_frames")
    if fn is None:
        fn = _COMPILED["label_frames"] = torch.compile(Interpreter._label_frames)
    return fn
