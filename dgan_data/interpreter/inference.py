"""Factorized inference of the interpreter ensemble: labels without the full feature tensor.

Bilinear resampling is linear and acts on every channel alike, so the first layer of
every model can be applied to each feature map at its native resolution and the much
smaller result resampled and summed (see :mod:`dgan_data.interpreter.model`). This
module holds that computation as :class:`FactorizedInference`, which
:class:`~dgan_data.interpreter.model.Interpreter` inherits: input checks, the shared
pieces of both paths, :meth:`~FactorizedInference.predict` (which picks the "rows"
path of :mod:`.rows`, the CPU path, or the "interpolate" path of :mod:`.frames`, the
CUDA path) and the reference ``naive_predict``.

The mixins read the interpreter's weights and settings (``w1``.. ``b3``, the BatchNorm
tensors, ``layout``, ``label_size``, ``crop``, ``chunk_bytes``, ``impl``, ``tf32``,
``compile_predict``) and its plan caches; they own no state of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import check_bool, check_int, keyword_hints, tensor_fields_repr
from ..uncertainty import image_scores, js_divergence
from .context import expand_maps
from .frames import FramesInference
from .resample import Crop, Layout, check_crop, check_label_size, feature_layout, layout_diffs
from .rows import DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_BYTES_CUDA, RowsInference

__all__ = ["BN_EPS", "IMPLS", "FactorizedInference", "Prediction"]

BN_EPS = 1e-5
#: Inference paths of ``predict`` (see :meth:`Interpreter.predict`).
IMPLS = ("auto", "rows", "interpolate")


@keyword_hints
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

    def __repr__(self) -> str:
        return tensor_fields_repr(self)


@keyword_hints
class FactorizedInference(RowsInference, FramesInference):
    """Inference methods of :class:`~dgan_data.interpreter.model.Interpreter` (see module).

    Reads the interpreter's attributes declared here and in the two path mixins."""

    in_channels: int
    label_size: tuple[int, int] | None
    crop: Crop | None
    chunk_bytes: int | None
    impl: str
    compile_predict: bool
    map_layout: Layout
    image_layout: tuple[int, int, int] | None
    context: int

    def prediction_maps(
        self, features: Sequence[torch.Tensor], image: torch.Tensor
    ) -> list[torch.Tensor]:
        """The maps :meth:`predict` takes from one generator pass: its feature maps, then
        its image when the interpreter reads it (``image_layout``)."""
        return [*features, image] if self.image_layout is not None else list(features)

    def expand_inputs(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The maps the MLP reads from the maps ``predict`` takes (adds the finest maps'
        neighbourhood copies when ``context`` > 0; see :mod:`.context`)."""
        return expand_maps(maps, self.context)

    def _check_features(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Validate a batch of maps against ``map_layout`` (the generator's feature maps,
        then the image when the interpreter takes it), with a clear message; returns the
        maps the MLP reads (:meth:`expand_inputs`)."""
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
        diffs = layout_diffs(self.map_layout, feature_layout(feats))
        if diffs:
            needs = ""
            if self.image_layout is not None:
                needs = " (it takes the generated image after the feature maps)"
            raise ValueError(
                f"feature maps do not match the {self._name()}'s layout{needs}: " + "; ".join(diffs)
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
        return self.expand_inputs(feats)

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
            frame = check_label_size(output_size, "output_size")
        return frame, check_crop(crop, frame)  # type: ignore[arg-type]

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

    def _budget(self, chunk_bytes: int | None) -> int:
        """Working-memory budget of one chunk: ``chunk_bytes``, else ``self.chunk_bytes``,
        else the device's default; a positive int (not a bool), else a ValueError."""
        if chunk_bytes is not None:
            return check_int(chunk_bytes, "chunk_bytes", 1)
        if self.chunk_bytes is not None:
            return check_int(self.chunk_bytes, "interp.chunk_bytes", 1)
        return DEFAULT_CHUNK_BYTES_CUDA if self.device.type == "cuda" else DEFAULT_CHUNK_BYTES

    def _check_weights_dtype(self) -> None:
        """The factorized paths accumulate in float32 and multiply the weights as they
        are: weights cast with ``.half()``, ``.double()`` etc. are refused clearly."""
        bad = {str(t.dtype) for t in chain(self.parameters(), self.buffers())}
        bad.discard("torch.float32")
        if bad:
            raise ValueError(
                f"predict needs float32 interpreter weights, got {', '.join(sorted(bad))}: "
                "cast back with interp.float(); for half precision keep float32 weights and "
                "run under autocast (Labeler(dtype=torch.bfloat16) or torch.autocast)"
            )

    @torch.no_grad()
    def first_layer(
        self,
        features: Sequence[torch.Tensor],
        output_size: Sequence[int] | None = None,
        crop: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """The first Linear layer (bias included) at every label pixel, computed factorized:
        (B, M, H1, H, W). Materialises the full result; meant for tests and inspection."""
        self._check_weights_dtype()
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
        check_finite: bool = True,
    ) -> Prediction:
        """Labels and uncertainty for a batch of feature maps, by factorized inference.

        ``features``: the generator's list of maps (B, C_l, h_l, w_l), then the generated
        image (B, 3, H, W) when the interpreter takes it (``with_image``), checked against
        ``map_layout``. ``output_size``: label frame (H, W); None uses the frame (and crop)
        the interpreter was trained on. ``crop``: (top, left, height, width) cut from the
        frame after upsampling. ``vote``: "mean" (argmax of the mean softmax) or
        "majority" (most frequent per-model argmax, ties to the lower class).
        ``top_fraction``: share of pixels averaged into the image score. The output is
        computed in chunks (whole images, or rows of one image) of about ``chunk_bytes``
        working memory (default ``self.chunk_bytes``, else 512 MiB on the CPU and 2 GiB
        on CUDA; a positive int, else a ValueError). Works under autocast (products in
        its dtype); softmax and Jensen-Shannon are computed in float32. The weights must
        be float32 (an interpreter cast with ``.half()`` etc. is a ValueError: use
        autocast for half precision).

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
        ``check_finite``: on the rows path, features holding NaN or inf (every label
        would be class 0) raise ValueError; the interpolate path never synchronises, so
        there (and with False) non-finite scores are the caller's to check (the
        :class:`~dgan_data.Labeler` does).
        """
        if vote not in ("mean", "majority"):
            raise ValueError(f"vote must be 'mean' or 'majority', got {vote!r}")
        return_probs = check_bool(return_probs, "return_probs")  # bool("no") is True
        check_finite = check_bool(check_finite, "check_finite")
        if compile is not None:
            compile = check_bool(compile, "compile")
        impl = self._resolve_impl(impl)
        self._check_weights_dtype()
        self._budget(chunk_bytes)  # checked before any work
        feats = self._check_features(features)
        frame, crop_ = self._frame(output_size, crop)
        if impl == "interpolate":
            use_compile = self.compile_predict if compile is None else compile
            labels, js, probs = self._predict_frames(
                feats, frame, crop_, vote, return_probs, chunk_bytes, use_compile
            )
            return Prediction(labels, js, image_scores(js, top_fraction), probs)
        labels, js, probs = self._predict_rows(feats, frame, crop_, vote, return_probs, chunk_bytes)
        scores = image_scores(js, top_fraction)
        if check_finite and not bool(torch.isfinite(scores).all()):  # rows sync anyway
            bad = [i for i, v in enumerate(scores.tolist()) if not math.isfinite(v)]
            raise ValueError(
                f"features of batch item(s) {bad[:8]} hold NaN or inf: their labels would all "
                "be class 0"
            )
        return Prediction(labels, js, scores, probs)

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
