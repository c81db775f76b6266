"""The Labeler: generator + interpreter + label frame -> labeled samples.

The one place that runs the models. Given seeds it returns images in [0, 1] (in the
label frame), masks, per-pixel and per-image uncertainty, and the seeds; the stream,
the export and the preview all label through it, so a sample looks the same wherever
it is made.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .conventions import (
    IGNORE_INDEX,
    MAX_CLASSES,
    check_bool,
    check_names,
    check_number,
    check_palette,
    check_truncation_cutoff,
    check_truncation_psi,
    keyword_hint,
    keyword_hints,
    keyword_names,
    tensor_fields_repr,
    with_hint,
)
from .conventions import check_device as _check_device
from .generators import Generator
from .interpreter import Interpreter
from .interpreter.inference import IMPLS
from .interpreter.resample import MAX_LABEL_SIDE, check_label_size
from .palette import make_palette
from .presets import (
    get_preset,
    load_generator,
    load_interpreter,
    load_preset_generator,
    load_preset_interpreter,
)
from .seeds import check_seeds, derive_seed, z_from_seeds

log = logging.getLogger(__name__)

__all__ = ["MAX_LABEL_SIDE", "LabeledBatch", "Labeler", "NonFiniteOutputError", "check_label_size"]

Crop = tuple[int, int, int, int]


class NonFiniteOutputError(RuntimeError):
    """The generator or the interpreter produced NaN or inf: the models are broken."""


#: Seed purpose of a sample's random noise inputs (``noise="random"``).
_NOISE_PURPOSE = 0x401


def seeded_noise_inputs(G: Generator, seeds: Sequence[int] | torch.Tensor) -> list[torch.Tensor]:
    """One (B, 1, h, w) tensor per noise input of ``G``, each sample's drawn from its own
    seed on the CPU: ``noise="random"`` is then reproducible per seed, independent of the
    batch a sample is generated in and of the global RNG."""
    seeds = [int(s) for s in (seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds)]
    shapes = G.noise_shapes()
    if not seeds:  # an empty batch, as with the other noise modes
        return [torch.zeros((0, 1, h, w)) for h, w in shapes]
    per_sample = []
    for s in seeds:
        g = torch.Generator().manual_seed(derive_seed(s, _NOISE_PURPOSE))
        per_sample.append([torch.randn((1, 1, h, w), generator=g) for h, w in shapes])
    return [torch.cat([noise[i] for noise in per_sample]) for i in range(len(shapes))]


@keyword_hints
@dataclass
class LabeledBatch:
    """One batch of labeled samples, all tensors on the labeler's device.

    - ``images`` (B, 3, H, W) float32 in [0, 1], in the label frame;
    - ``masks`` (B, H, W) int64, ``IGNORE_INDEX`` where pixels are ignored;
    - ``pixel_uncertainty`` (B, H, W) float32 Jensen-Shannon divergence;
    - ``image_uncertainty`` (B,) float32 image scores;
    - ``seeds`` (B,) int64 on the CPU;
    - ``class_mass`` (B, K) float32 expected pixels per class (the sum of the ensemble's
      mean probabilities over the frame), only when asked for, else None;
    - ``class_peak`` (B, K) float32 mean of each class's ``n`` highest pixel probabilities
      (how surely the image shows ``n`` pixels of the class), only when asked for;
    - ``probs`` (B, K, H, W) float16 the ensemble's mean class probabilities per pixel (soft
      labels), only when asked for.
    """

    images: torch.Tensor
    masks: torch.Tensor
    pixel_uncertainty: torch.Tensor
    image_uncertainty: torch.Tensor
    seeds: torch.Tensor
    class_mass: torch.Tensor | None = None
    class_peak: torch.Tensor | None = None
    probs: torch.Tensor | None = None

    def __repr__(self) -> str:
        return tensor_fields_repr(self)

    def __len__(self) -> int:
        return int(self.seeds.shape[0])

    def select(self, index: torch.Tensor) -> LabeledBatch:
        """The samples at ``index`` (a boolean mask or integer indices)."""

        def take(t: torch.Tensor) -> torch.Tensor:
            return t[index.to(t.device)]

        mass = None if self.class_mass is None else take(self.class_mass)
        peak = None if self.class_peak is None else take(self.class_peak)
        probs = None if self.probs is None else take(self.probs)
        return LabeledBatch(
            *(take(t) for t in self.tensors()), class_mass=mass, class_peak=peak, probs=probs
        )

    def check_finite(self, scores: list[float] | None = None) -> None:
        """Raise :class:`NonFiniteOutputError` if a sample's score is NaN or inf.

        A NaN score means the generator or interpreter produced a non-finite value for
        that sample (broken weights, or float16 overflow). ``scores``: the image scores
        already read to the host, to avoid a second device sync.
        """
        values = self.image_uncertainty.tolist() if scores is None else scores
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            seeds = self.seeds.tolist()
            raise NonFiniteOutputError(
                f"the generator or interpreter produced NaN/inf for {len(bad)} of "
                f"{len(values)} samples (seeds {[seeds[i] for i in bad[:4]]}): check the "
                "weights for non-finite values; with dtype=float16, overflow is likely: "
                "use dtype=torch.bfloat16 or None"
            )

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.images, self.masks, self.pixel_uncertainty, self.image_uncertainty, self.seeds)


#: The generator noise modes a labeler takes ("const": each seed's image is fixed;
#: "random": each sample's noise is drawn from its seed).
NOISE_MODES = ("const", "random")
#: Autocast dtypes a labeler takes (None: float32, no autocast).
LABEL_DTYPES = (None, torch.float32, torch.float16, torch.bfloat16)


def _check_dtype(dtype: Any) -> torch.dtype | None:
    """``dtype`` when it is one of :data:`LABEL_DTYPES`, else a ValueError (a string or an
    integer dtype would be recorded in ``settings()`` and fail, or be ignored, later)."""
    if not any(dtype is d for d in LABEL_DTYPES):
        raise ValueError(
            f"dtype must be None, torch.float32, torch.float16 or torch.bfloat16, got {dtype!r:.80}"
        )
    return dtype


@keyword_hints
class Labeler:
    """Label generated images with an interpreter, reproducibly from seeds.

    Args:
        generator: a :class:`Generator`.
        interpreter: an :class:`Interpreter` trained on that generator (checked).
        truncation_psi: truncation of w (None: what the interpreter's annotations used,
            else 1.0); ``truncation_cutoff``: truncated w layers (None: what the
            annotations used, else the architecture's default).
        noise: generator noise mode ("const" keeps each seed's image fixed; "random"
            draws each sample's noise from its seed, so a seed still gives one image).
        label_size: label frame (H, W); default: the interpreter's frame and crop, else
            the generator's resolution. Images are resized to it.
        dtype: None (float32), ``torch.bfloat16`` or ``torch.float16`` autocast.
        ignore_uncertain_pixels: pixels whose JS divergence exceeds this get
            ``IGNORE_INDEX`` in the mask (None: off).
        device: where the models run (default: the interpreter's device). The models
            are moved there and put in eval mode.
        impl: the interpreter's inference path, "auto" (interpolate on CUDA, rows on
            the CPU), "rows" or "interpolate" (None: the interpreter's ``impl``); see
            :meth:`Interpreter.predict`.
        compile: run the interpreter's interpolate path through ``torch.compile`` (also
            on when the interpreter's ``compile_predict`` is set). The first batches
            take longer (compilation, and again for a new batch size); if compiling
            fails, a warning is logged and labeling runs eagerly.
    """

    def __init__(
        self,
        generator: Generator,
        interpreter: Interpreter,
        *,
        truncation_psi: float | None = None,
        truncation_cutoff: int | None = None,
        noise: str = "const",
        label_size: tuple[int, int] | None = None,
        dtype: torch.dtype | None = None,
        ignore_uncertain_pixels: float | None = None,
        device: str | torch.device | None = None,
        class_names: Sequence[str] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        impl: str | None = None,
        compile: bool = False,
    ) -> None:
        if not isinstance(generator, Generator):
            raise TypeError(f"generator must be a Generator, got {type(generator).__name__}")
        if not isinstance(interpreter, Interpreter):
            raise TypeError(f"interpreter must be an Interpreter, got {type(interpreter).__name__}")
        if interpreter.num_classes > MAX_CLASSES:
            raise ValueError(
                f"the interpreter has {interpreter.num_classes} classes; labels hold at most "
                f"{MAX_CLASSES} (uint8 masks whose {IGNORE_INDEX} is the ignore index)"
            )
        dev = _check_device(device) or interpreter.device
        self.G = generator.to(dev).eval().requires_grad_(False)
        self.interpreter = interpreter.to(dev).eval()
        self.interpreter.check_compatible(self.G)
        self.device = dev
        self._fingerprints: tuple[str, str] | None = None
        # None: sample as the interpreter's annotations were sampled (its training_info)
        if truncation_psi is None:
            truncation_psi = interpreter.training_info.get("truncation_psi")
        self.truncation_psi = check_truncation_psi(
            1.0 if truncation_psi is None else truncation_psi
        )
        if truncation_cutoff is None:  # it was left to the architecture's default
            truncation_cutoff = interpreter.training_info.get("truncation_cutoff") or None
        self.truncation_cutoff = check_truncation_cutoff(truncation_cutoff)
        if not isinstance(noise, str) or noise not in NOISE_MODES:
            raise ValueError(f"noise must be 'const' or 'random', got {noise!r:.80}")
        self.noise = noise
        self.dtype = _check_dtype(dtype)
        if impl is not None and impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
        self.impl = impl
        self.compile = check_bool(compile, "compile")
        self.ignore_uncertain_pixels = (
            None
            if ignore_uncertain_pixels is None
            else check_number(ignore_uncertain_pixels, "ignore_uncertain_pixels", low=0.0)
        )
        self.frame, self.crop = self._label_frame(check_label_size(label_size))
        self.label_size = (self.crop[2], self.crop[3]) if self.crop is not None else self.frame
        K = interpreter.num_classes
        names = check_names(class_names) if class_names is not None else interpreter.class_names
        if class_names is not None and not names:  # [] dropped the interpreter's names
            raise ValueError("class_names is empty; give one name per class, or None")
        self.class_names = list(names) if names else [f"class_{k}" for k in range(K)]
        if len(self.class_names) != K:
            raise ValueError(f"{len(self.class_names)} class names given for {K} classes")
        pal = palette if palette is not None else interpreter.palette
        self.palette = check_palette(pal, K) if pal is not None else make_palette(K).tolist()

    def __repr__(self) -> str:
        (height, width), interpreter = self.G.resolution, self.interpreter
        return (
            f"Labeler(<{type(self.G).__name__}> {height}x{width}, <{type(interpreter).__name__}>"
            f" of {interpreter.num_models} models, {len(self.class_names)} classes, "
            f"truncation_psi={self.truncation_psi}, label_size={self.label_size}, "
            f"device={str(self.device)!r})"
        )

    # ------------------------------------------------------------- building
    @classmethod
    def from_sources(
        cls,
        preset: str | None = None,
        *,
        generator: Generator | str | os.PathLike | None = None,
        interpreter: Interpreter | str | os.PathLike | None = None,
        truncation_psi: float | None = None,
        truncation_cutoff: int | None = None,
        device: str | torch.device | None = None,
        **settings: Any,
    ) -> Labeler:
        """A labeler from a preset name and/or generator and interpreter (objects or files).

        The preset supplies its own files (from its folders, never a file of that name
        in the working directory; each checked against the preset), its truncation and
        its class names and palette; explicit arguments override it. An interpreter
        passed explicitly keeps its own class names and palette (the preset's only when
        it stores no names and has the preset's number of classes).
        """
        # before any file loads (an unknown one used to fail in Labeler.__init__, after them)
        check_labeler_options(settings, "Labeler.from_sources", Labeler.from_sources)
        names = palette = None
        # explicit names and palette replace the preset's or the interpreter's (they were
        # passed on beside those: TypeError, multiple values for 'class_names')
        explicit_names = settings.pop("class_names", None)
        explicit_palette = settings.pop("palette", None)
        G: Generator | None = None
        interp: Interpreter | None = None
        if preset is not None:
            p = get_preset(preset)
            if generator is None:
                G = load_preset_generator(p.name)
            if interpreter is None:
                interp = load_preset_interpreter(p.name)  # checked as the preset's
            truncation_psi = p.truncation_psi if truncation_psi is None else truncation_psi
            if truncation_cutoff is None:
                truncation_cutoff = p.truncation_cutoff
            names, palette = list(p.class_names), [list(c) for c in p.palette]
        elif generator is None or interpreter is None:
            raise ValueError("a labeler needs a preset name, or both generator= and interpreter=")
        if G is None:
            G = generator if isinstance(generator, Generator) else load_generator(generator)
        if interp is None:
            interp = (
                interpreter
                if isinstance(interpreter, Interpreter)
                else load_interpreter(interpreter)
            )
            # explicit: its own names and palette; the preset's only for a nameless
            # interpreter with the preset's number of classes
            if interp.class_names or names is None or len(names) != interp.num_classes:
                names = palette = None
        if explicit_names is not None:
            names = explicit_names
        if explicit_palette is not None:
            palette = explicit_palette
        return cls(
            G,
            interp,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            device=device,
            class_names=names,
            palette=palette,
            **settings,
        )

    def _label_frame(
        self, label_size: tuple[int, int] | None
    ) -> tuple[tuple[int, int], Crop | None]:
        """(label frame, crop or None): ``label_size``, else the interpreter's frame and
        crop, else the generator's resolution."""
        interp = self.interpreter
        if label_size is not None:
            if interp.crop is not None and label_size != tuple(interp.label_size or ()):
                raise ValueError(
                    f"label_size={label_size} cannot be used with this interpreter: it crops "
                    f"{tuple(interp.crop)} (top, left, height, width) out of its label frame "
                    f"{tuple(interp.label_size)}; leave label_size=None"
                )
            return label_size, interp.crop
        if interp.label_size is not None:
            name = f"the label_size of {interp.source or 'the interpreter'}"
            return check_label_size(interp.label_size, name), interp.crop  # type: ignore[return-value]
        return (int(self.G.resolution[0]), int(self.G.resolution[1])), None

    # ------------------------------------------------------------- identity
    def fingerprints(self) -> tuple[str, str]:
        """(generator, interpreter) fingerprints, hashed once per labeler."""
        if self._fingerprints is None:
            self._fingerprints = (self.G.fingerprint(), interpreter_fingerprint(self.interpreter))
        return self._fingerprints

    def resolved_impl(self) -> str:
        """The interpreter's inference path this labeler uses, "rows" or "interpolate"
        ("auto" resolved for the interpreter's device): the two differ in float rounding."""
        return self.interpreter._resolve_impl(self.impl)

    def settings(self) -> dict[str, Any]:
        """Everything that shapes a labeled sample besides its seed (JSON-friendly)."""
        g_fp, i_fp = self.fingerprints()
        return {
            "generator_fingerprint": g_fp,
            "interpreter_fingerprint": i_fp,
            "truncation_psi": self.truncation_psi,
            "truncation_cutoff": self.truncation_cutoff,
            "noise": self.noise,
            "label_size": list(self.label_size),
            "frame": list(self.frame),
            "crop": list(self.crop) if self.crop is not None else None,
            "dtype": str(self.dtype).replace("torch.", "") if self.dtype else "float32",
            "ignore_uncertain_pixels": self.ignore_uncertain_pixels,
            "num_classes": self.interpreter.num_classes,
        }

    # ------------------------------------------------------------- labeling
    @torch.no_grad()
    def label(self, seeds: Sequence[int] | torch.Tensor, *, probs: bool = False) -> LabeledBatch:
        """Generate and label one sample per seed (one batch on the device).

        No host synchronisation: a sample whose image or score is not finite gets a NaN
        score; call :meth:`LabeledBatch.check_finite` when the scores are on the host.
        ``probs``: also return the ensemble's mean class probabilities (soft labels).
        """
        seeds = check_seeds(seeds)  # a list: an iterator would be used up by synthesize
        img, feats = self.synthesize(seeds)
        return self.label_synthesized(img, feats, seeds, probs=probs)

    @torch.no_grad()
    def synthesize(
        self, seeds: Sequence[int] | torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(images, feature maps) of the generator for these seeds, as :meth:`label`
        makes them (truncation, noise, dtype); for callers that also need the features."""
        G, device = self.G, self.device
        z = _to_device(z_from_seeds(seeds, G.z_dim), device)
        noise = seeded_noise_inputs(G, seeds) if self.noise == "random" else self.noise
        with torch.autocast(device.type, dtype=self.dtype, enabled=self._autocast):
            w = G.mapping(z, self.truncation_psi, self.truncation_cutoff)
            img, feats = G.synthesize(w, noise=noise)
        return img, list(feats)

    @property
    def _autocast(self) -> bool:
        return self.dtype is not None and self.dtype != torch.float32

    @torch.no_grad()
    def label_synthesized(
        self,
        img: torch.Tensor,
        feats: Sequence[torch.Tensor],
        seeds: Sequence[int] | torch.Tensor,
        *,
        class_mass: bool = False,
        class_peak: int = 0,
        probs: bool = False,
    ) -> LabeledBatch:
        """Label images and features from :meth:`synthesize` (the second half of
        :meth:`label`). ``class_mass``: also return each image's expected pixels per
        class (a softer count than the labels' for classes the ensemble is unsure of).
        ``class_peak`` = n > 0: also return, per class, the mean of its n highest pixel
        probabilities (unlike the mass, probability spread thinly over many pixels
        does not add up to an example of the class). ``probs``: also return the
        ensemble's mean class probabilities per pixel, in float16 (soft labels)."""
        if isinstance(class_peak, bool) or not isinstance(class_peak, int) or class_peak < 0:
            raise ValueError(f"class_peak must be an int >= 0, got {class_peak!r}")
        class_mass, probs = check_bool(class_mass, "class_mass"), check_bool(probs, "probs")
        seeds = check_seeds(seeds)
        if len(seeds) != img.shape[0]:  # the batch's seeds are its provenance
            raise ValueError(f"{len(seeds)} seeds for {img.shape[0]} images; give one per image")
        interp, device = self.interpreter, self.device
        with torch.autocast(device.type, dtype=self.dtype, enabled=self._autocast):
            pred = interp.predict(
                interp.prediction_maps(feats, img),
                output_size=self.frame,
                crop=self.crop,
                impl=self.impl,
                compile=self.compile or None,  # None: the interpreter's own setting
                return_probs=class_mass or class_peak > 0 or probs,
                check_finite=False,  # checked below, per sample, with NonFiniteOutputError
            )
        # A non-finite image makes its score NaN (on the device: no host sync here);
        # consumers read the scores on the host anyway and call ``check_finite``.
        scores = pred.image_uncertainty.float()
        finite_image = torch.isfinite(img).flatten(1).all(1)
        scores = torch.where(finite_image, scores, torch.full_like(scores, float("nan")))
        images = images_for_labels(img.float(), self.frame, self.crop)
        masks = pred.labels
        if self.ignore_uncertain_pixels is not None:
            masks = masks.masked_fill(
                pred.pixel_uncertainty > self.ignore_uncertain_pixels, IGNORE_INDEX
            )
        return LabeledBatch(
            images=images,
            masks=masks,
            pixel_uncertainty=pred.pixel_uncertainty.float(),
            image_uncertainty=scores,
            seeds=torch.as_tensor(seeds, dtype=torch.int64),
            class_mass=pred.probs.float().sum((2, 3)) if class_mass else None,
            class_peak=peak_probabilities(pred.probs, class_peak) if class_peak else None,
            probs=pred.probs.half() if probs else None,
        )


def peak_probabilities(probs: torch.Tensor, n: int) -> torch.Tensor:
    """(B, K) mean of each class's ``n`` highest probabilities in ``probs`` (B, K, H, W)."""
    flat = probs.float().flatten(2)
    return flat.topk(min(n, flat.shape[2]), dim=2).values.mean(2)


def warn_without_ensemble(labeler: Labeler, owner: str, effect: str | None) -> None:
    """Warn when ``labeler``'s interpreter has one model and uncertainty is asked of it:
    the JS divergence of a single model is 0 at every pixel, so no image is more
    uncertain than another and no pixel is ignored. ``effect`` says what that does to
    the owner's own use of the uncertainty (None when it makes none)."""
    if labeler.interpreter.num_models > 1:
        return
    effects = [effect] if effect else []
    if labeler.ignore_uncertain_pixels is not None:
        effects.append("ignore_uncertain_pixels ignores no pixel")
    if effects:
        log.warning(
            "%s: the interpreter has one model, so its uncertainty (the ensemble's "
            "disagreement) is 0 everywhere: %s. Fit an ensemble (num_models >= 2) to "
            "filter by uncertainty",
            owner,
            "; ".join(effects),
        )


def labeler_options() -> set[str]:
    """The settings of a :class:`Labeler` that functions taking ``**labeler_options``
    pass on to it (its generator and interpreter are passed on their own)."""
    return set(keyword_names(Labeler.__init__) - {"self", "generator", "interpreter"})


def check_labeler_options(options: dict[str, Any], owner: str, function: Any) -> None:
    """TypeError naming the keys of ``options`` that are no :class:`Labeler` setting,
    with the close names among those settings and ``function``'s own arguments (a
    mistyped ``batch_size`` lands in ``**labeler_options``): ``export_dataset() got an
    unexpected keyword argument 'batchsize' ... Did you mean 'batch_size'?``."""
    known = labeler_options()
    unknown = sorted(set(options) - known)
    if not unknown:
        return
    own = keyword_names(function) - {"self", "cls"}
    words = "keyword argument" if len(unknown) == 1 else "keyword arguments"
    raise TypeError(
        with_hint(
            f"{owner}() got an unexpected {words} {', '.join(map(repr, unknown))}: neither "
            f"its own nor a labeler option ({', '.join(sorted(known))})",
            keyword_hint(unknown[0], sorted(known | own)),
        )
    )


def labeler_from(
    source: Any,
    generator: Any = None,
    interpreter: Any = None,
    device: str | torch.device | None = None,
    **labeler_options: Any,
) -> tuple[Labeler, str | None]:
    """(labeler, preset name or None) from a Labeler, a ``DatasetGANStream`` (its
    labeling settings), a preset name, or None with ``generator=`` and ``interpreter=``."""
    if isinstance(source, Labeler):
        if generator is not None or interpreter is not None or labeler_options:
            raise ValueError("pass either a Labeler or generator=/interpreter=/options, not both")
        if device is not None and torch.device(device) != source.device:
            raise ValueError(f"the Labeler runs on {source.device}, not on {device}")
        return source, None
    if hasattr(source, "labeler") and callable(source.labeler):  # a DatasetGANStream
        if generator is not None or interpreter is not None or labeler_options:
            raise ValueError(
                "pass either a DatasetGANStream or generator=/interpreter=/options, not both"
            )
        if device is not None:  # on a copy: the caller's stream keeps its device
            source = copy.copy(source)
            source.device = device
        return source.labeler(), getattr(source, "preset", None)
    if source is not None and not isinstance(source, str):
        raise TypeError(
            "expected a preset name, a Labeler, a DatasetGANStream or None, got "
            f"{type(source).__name__}"
        )
    labeler = Labeler.from_sources(
        source, generator=generator, interpreter=interpreter, device=device, **labeler_options
    )
    return labeler, source


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU tensor to ``device``; to CUDA through pinned memory, asynchronously (a
    plain copy from pageable memory would make the host wait for the device)."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def images_for_labels(img: torch.Tensor, frame: tuple[int, int], crop: Crop | None) -> torch.Tensor:
    """Generator output in [-1, 1] -> [0, 1], resized to the label frame, then cropped
    like the labels (the crop is in label-frame pixels)."""
    img = (img.clamp(-1, 1) + 1) / 2
    size = tuple(img.shape[-2:])
    if size != tuple(frame):
        if frame[0] <= size[0] and frame[1] <= size[1]:
            img = F.interpolate(img, size=frame, mode="area")
        else:
            img = F.interpolate(img, size=frame, mode="bilinear", align_corners=False)
            img = img.clamp(0, 1)
    if crop is not None:
        top, left, h, w = crop
        img = img[..., top : top + h, left : left + w]
    return img


def interpreter_fingerprint(interp: Interpreter) -> str:
    """Short hash of an interpreter's tensors (names and float32 values)."""
    h = hashlib.sha256()
    for name, t in sorted(interp.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
