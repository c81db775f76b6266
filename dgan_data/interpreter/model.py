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

Optional pixel context (``with_image``, ``context``; see :mod:`.context`): the generated
image as one more map, and the finest maps' neighbourhood as shifted copies. Both are
expanded into ordinary maps before the store and the inference paths see them.

Interpreters are saved as ``.safetensors`` with JSON metadata in the header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..conventions import (
    check_bool,
    check_device,
    check_generator,
    check_truncation_cutoff,
    check_truncation_psi,
    keyword_hints,
)
from ..fileio import nonempty_path, output_path_problem
from ..seeds import check_seed, derive_seed
from . import io as interpreter_io
from .checks import (
    check_frame,
    check_labels,
    check_layout,
    check_mask_ids,
    check_sizes,
    check_store_dtype,
    check_triple,
    default_hidden,
    sampling_settings,
    training_settings,
)
from .context import check_context, input_layout, map_layout
from .fit import FeatureStore, as_masks, check_storable, train_ensemble
from .inference import BN_EPS, FactorizedInference, Prediction
from .resample import (
    Layout,
    check_crop,
    check_label_size,
    feature_layout,
    layout_diffs,
)

logger = logging.getLogger(__name__)

__all__ = ["Interpreter", "Prediction", "default_hidden"]

BN_MOMENTUM = 0.1
#: Training steps when ``max_steps`` is None (10.2M pixel draws per model at 512 a step).
DEFAULT_MAX_STEPS = 20_000
#: Seed purposes (the second part of ``derive_seed``): initial weights, pixel draws.
SEED_INIT, SEED_PIXELS = 0, 1
#: fit_features arguments that Interpreter.fit fills from the annotations and generator.
_FIT_FROM_INPUTS = ("output_size", "crop", "class_names", "palette", "fingerprint")

FeatureSource = Sequence[Sequence[torch.Tensor]] | Callable[[int], Sequence[torch.Tensor]]


# ------------------------------------------------------------------ the model
def _image_size(G: Any) -> tuple[int, int] | None:
    """(height, width) of a generator's images, None for a layout or feature maps."""
    res = getattr(G, "resolution", None)
    if res is None or not callable(getattr(G, "synthesize", None)):
        return None
    return (int(res), int(res)) if isinstance(res, int) else (int(res[0]), int(res[1]))


@keyword_hints
class Interpreter(FactorizedInference, nn.Module):
    """Ensemble of ``num_models`` per-pixel MLPs with batched weights.

    ``feature_layout``: [(channels, h, w), ...] of the generator's feature maps, forward
    order (see :func:`feature_layout`). ``label_size``: the (H, W) frame the features
    are upsampled to; ``crop``: optional (top, left, height, width) cut out of that frame
    after upsampling (DatasetGAN's car: 512 x 512 frame, rows 64..447). Both are the
    defaults of :meth:`predict`. ``seed`` draws the initial weights (model m from its
    own seed derived from (seed, m)): Linear weights N(0, 0.02), biases 0, BatchNorm
    1 / 0, as DatasetGAN's ``init_weights``.
    """

    # The weights (parameters) and batch-norm statistics (buffers) of the M models, made
    # by name in __init__ (``interpreter_io.expected_shapes``): declared here so that
    # type checkers know them as tensors, not as ``Tensor | Module``.
    w1: torch.Tensor
    b1: torch.Tensor
    bn1_weight: torch.Tensor
    bn1_bias: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    bn2_weight: torch.Tensor
    bn2_bias: torch.Tensor
    w3: torch.Tensor
    b3: torch.Tensor
    bn1_mean: torch.Tensor
    bn1_var: torch.Tensor
    bn2_mean: torch.Tensor
    bn2_var: torch.Tensor

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
        image_layout: Sequence[int] | None = None,
        context: int = 0,
        _allocate: bool = True,
    ) -> None:
        super().__init__()
        layout = check_layout(feature_layout)
        num_classes, num_models, (h1, h2) = check_sizes(num_classes, num_models, hidden)
        class_names, palette, fingerprint = check_labels(
            class_names, palette, fingerprint, num_classes
        )
        seed = check_seed(seed)
        label_size = check_label_size(label_size)
        if crop is not None and label_size is None:
            raise ValueError("a crop needs the label_size (the frame it is cut from)")
        self.layout: Layout = layout
        if image_layout is not None:
            image_layout = check_triple(image_layout, "image_layout")
        #: (channels, height, width) of the generated image when it is an input, else None.
        self.image_layout: tuple[int, int, int] | None = image_layout
        #: Neighbourhood radius on the finest maps (0: DatasetGAN's single pixel).
        self.context = check_context(context)
        #: The maps ``predict`` takes (the generator's, then the image when it is used).
        self.map_layout: Layout = map_layout(layout, self.image_layout)
        #: The maps the MLP reads (``map_layout`` and the neighbourhood copies).
        self.input_layout: Layout = input_layout(layout, self.image_layout, self.context)
        if self.in_channels > interpreter_io.MAX_CHANNELS:
            raise ValueError(
                f"the interpreter would read {self.in_channels} input channels (maps, image "
                f"and neighbourhood copies); at most {interpreter_io.MAX_CHANNELS}"
            )
        self.num_classes = num_classes
        self.num_models = num_models
        self.hidden = (h1, h2)
        self.class_names = class_names
        self.palette = palette
        self.label_size = label_size
        self.crop = check_crop(crop, label_size) if crop is not None else None  # type: ignore[arg-type]
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
        """Total input channels C of the MLP (5,088 for the 1024 px StyleGAN1 face
        generator; more with the image and a neighbourhood)."""
        return sum(c for c, _, _ in self.input_layout)

    @property
    def with_image(self) -> bool:
        """Whether ``predict`` takes the generated image after the feature maps."""
        return self.image_layout is not None

    @property
    def device(self) -> torch.device:
        return self.w1.device

    def reset_parameters(self, seed: int = 0) -> None:
        """Draw every model's weights from its own CPU generator seeded by (seed, m)."""
        seed = check_seed(seed)
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
            f"crop={self.crop}, image={self.image_layout}, context={self.context}"
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
        image_size = _image_size(G_or_layout)
        if self.image_layout is not None and image_size and image_size != self.image_layout[1:]:
            diffs.append(
                f"its images are {image_size[0]} x {image_size[1]}, the interpreter reads "
                f"images of {self.image_layout[1]} x {self.image_layout[2]}"
            )
        if fingerprint and self.fingerprint and fingerprint != self.fingerprint:
            diffs.append(
                f"generator fingerprint is {fingerprint}, the interpreter was trained on "
                f"{self.fingerprint}"
            )
        if diffs:
            # the generator's file too: with both files given, either may be the wrong one
            source = getattr(G_or_layout, "source", None)
            generator = f"the generator {source}" if isinstance(source, str) else "the generator"
            raise ValueError(f"{self._name()} does not match {generator}: " + "; ".join(diffs))

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
        with_image: bool = False,
        context: int = 0,
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

        ``with_image``: the last map of every image's list is the generated image (C, H,
        W), an input like the features (``predict`` then takes it last too).
        ``context`` = R: the maps at the largest resolution also enter shifted by every
        offset within R pixels ((2R + 1)^2 - 1 copies; see :mod:`.context`).

        Memory: the stored maps (133 MB per 1024 px face image in float16) plus
        M x batch_size x C float32 per step; never pixels x channels for all images.
        Deterministic given ``seed`` (and the device's arithmetic).
        """
        # Every argument is checked before the first feature map is computed.
        device, store_device = check_device(device), check_device(store_device)
        num_classes, num_models, hidden = check_sizes(num_classes, num_models, hidden)
        class_names, palette, fingerprint = check_labels(
            class_names, palette, fingerprint, num_classes
        )
        if max_steps is None:
            max_steps = DEFAULT_MAX_STEPS
        settings = training_settings(
            batch_size,
            lr,
            max_steps,
            min_steps,
            eval_every,
            patience,
            min_delta,
            seed,
            class_balance,
        )
        store_dtype = check_store_dtype(store_dtype)
        with_image = check_bool(with_image, "with_image")
        progress = check_bool(progress, "progress")
        context = check_context(context)
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
        frame, crop_ = check_frame(masks_t, output_size, crop)
        check_mask_ids(masks_t, num_classes)

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
        if len(first) == 0:  # first[0].device below was an IndexError
            raise ValueError("image 0 has no feature maps: pass a list of (C, H, W) maps")
        if with_image and len(first) < 2:
            raise ValueError(
                "with_image=True needs the generator's feature maps followed by the image"
            )
        layout = feature_layout(first[:-1] if with_image else first)
        image_layout = feature_layout(first[-1:])[0] if with_image else None
        if device is None:
            device = first[0].device
        if store_device is None:
            store_device = device

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
            seed=settings["seed"],
            image_layout=image_layout,
            context=context,
        ).to(device)
        t_start = time.perf_counter()
        store = FeatureStore(model.input_layout, N, frame, crop_, store_dtype, store_device)
        logger.info(
            "storing native-resolution features of %d images: %.1f MB (%s on %s)",
            N,
            store.nbytes() / 2**20,
            store_dtype,
            store_device,
        )
        pending = {0: first}  # image 0's maps were read to learn the layout
        del first
        store.fill(
            lambda i: model.expand_inputs(pending.pop(i, None) or image_maps(i)),
            progress=progress,
        )

        info = train_ensemble(model, store, masks_t, **settings, progress=progress)
        model.training_info = {
            "num_images": N,
            "batch_size": settings["batch_size"],
            "lr": settings["lr"],
            "optimizer": "adam",
            **{k: settings[k] for k in ("max_steps", "min_steps", "eval_every", "patience")},
            "min_delta": settings["min_delta"],
            "seed": settings["seed"],
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
        :meth:`fit_features` runs with ``fit_kwargs``. Every argument is checked before
        the first image is regenerated.
        """
        taken = [k for k in _FIT_FROM_INPUTS if k in fit_kwargs]
        if taken:  # they reached fit_features twice: "got multiple values for keyword"
            raise TypeError(
                f"Interpreter.fit takes no {', '.join(f'{k}=' for k in taken)}: class_names, "
                "palette and crop come from the annotations, output_size from them or the "
                "generator, fingerprint from the generator"
            )
        check_generator(G, ("synthesize",))
        device = check_device(device)
        store_dtype = check_store_dtype(store_dtype)
        with_image = check_bool(fit_kwargs.get("with_image", False), "with_image")
        sampling = sampling_settings(annotations)
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
        noise = sampling["noise"]
        crop = getattr(annotations, "crop", None)
        label_size = getattr(annotations, "label_size", None)
        if label_size is None:
            label_size = tuple(G.resolution) if crop is not None else tuple(masks.shape[1:])
        if device is None:
            params = list(G.parameters()) if hasattr(G, "parameters") else []
            device = params[0].device if params else torch.device("cpu")

        def regenerate(i: int) -> list[torch.Tensor]:
            with torch.no_grad():
                img, feats = G.synthesize(w[i : i + 1].to(device), noise=noise)
            maps = [f[0] for f in ([*feats, img] if with_image else feats)]
            check_storable(maps, store_dtype, i)  # before the cast, which would hide the cause
            return [f.to(store_dtype) for f in maps]

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
        model.training_info.update(sampling)
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
        } | self._context_metadata()

    def _context_metadata(self) -> dict[str, Any]:
        """The pixel-context fields, only when used (older readers then see version 1)."""
        if not self.with_image and not self.context:
            return {}
        return {
            "format_version": interpreter_io.CONTEXT_FORMAT_VERSION,
            "image_layout": list(self.image_layout) if self.image_layout else None,
            "context": self.context,
        }

    def save(self, path: str | Path) -> Path:
        """Write the weights as ``.safetensors``, metadata as JSON in its header (atomic)."""
        path = nonempty_path(path, "path")
        problem = output_path_problem(path)
        if problem:  # a raw IsADirectoryError from the temp file's rename otherwise
            raise ValueError(f"{path}: {problem}")
        return interpreter_io.write_interpreter_file(path, dict(self.state_dict()), self.metadata())

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str | None = None) -> Interpreter:
        """Read an interpreter written by :meth:`save`; errors name the file and the problem.

        The header and the declared tensor shapes are checked before anything is
        allocated; non-finite weights are refused. ``device`` is checked first, with the
        package's rule (:func:`~dgan_data.conventions.check_device`): a name torch does not
        know, a value that is no device (``True``, ``3.5``) or a device not usable here is
        a ValueError naming it, before the file is read.
        """
        device = check_device(device)
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
            image_layout=meta.get("image_layout"),
            context=meta.get("context") or 0,
            _allocate=False,
        )
        model.load_state_dict(tensors, assign=True)
        model.training_info = _training_info(meta.get("training"), path)
        model.source = str(path)
        if device is not None:
            model = model.to(device)
        return model.eval()


def _training_info(training: Any, path: Any) -> dict[str, Any]:
    """The header's free-form ``training`` record; the fields read back (the psi and
    cutoff the Labeler defaults to) are checked here, naming the file: a NaN there
    failed later in the Labeler as if the user had passed it."""
    if training is None:
        return {}
    if not isinstance(training, dict):
        raise ValueError(
            f"{path}: field 'training' must be an object, got {type(training).__name__}"
        )
    psi = training.get("truncation_psi")
    if psi is not None:
        try:
            check_truncation_psi(psi, "training.truncation_psi")
        except ValueError as err:
            raise ValueError(f"{path}: field {err}") from None
    cutoff = training.get("truncation_cutoff")
    if cutoff not in (None, 0):  # 0, which a fit's sampling settings allow, reads as none
        try:
            check_truncation_cutoff(cutoff, "training.truncation_cutoff")
        except ValueError as err:
            raise ValueError(f"{path}: field {err}") from None
    return training
