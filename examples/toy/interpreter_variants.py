"""Interpreter variants on the toy preset's 16 annotations, scored against the annotator.

Each variant refits the interpreter from ``toyface-14``'s annotation folder (10 models)
and labels ``--eval`` fresh generated samples (seeds ``sample_seed(1, 7, i)``, the ones
``diagnose.py`` uses, psi of the preset); the score is the mIoU of its labels against
the annotator's (the toy human) on the same images. A variant is ``+``-joined settings:

- ``shipped``: the preset's interpreter as it ships (no refit);
- ``steps=N``: at most N training steps per model (the preset is built with 3,000);
- ``hidden=H1xH2``: MLP widths (DatasetGAN's (128, 32) by default);
- ``dropout=P``: dropout on the input features while training;
- ``noise=K``: each annotated latent's features also under K draws of random generator
  noise, with the same mask (the image barely moves: the annotator agrees with itself
  on 99 % of pixels across draws), as feature augmentation;
- ``mix=K``: each annotated latent's features also under K style mixes, with the same
  mask: its w from layer ``mixfrom=L`` on (default 8, the 64 px layers of the toy
  generator) is replaced by that of a fresh random latent at the preset's psi, so the
  image keeps its layout and takes another sample's colours and textures;
- ``selftrain=N``: the shipped interpreter labels N further samples; their most
  certain pixels (lowest ensemble JS, share ``keep``, default 0.8) are added to the
  training set as pseudo-labels;
- ``smooth=S``: at prediction, the mean probabilities are blurred by a Gaussian of
  sigma S pixels before the argmax;
- ``prior=T``: at prediction, the mean probabilities are divided by the classes' pixel
  frequencies in the 16 annotations to the power T before the argmax (prior correction,
  "logit adjustment": T = 1 labels as if every class were equally frequent);
- ``rgb=1``: the generated image itself (3 channels at full resolution) is an input
  beside the generator's feature maps (the interpreter's ``with_image``);
- ``patch=R``: every full-resolution map (the generator's two 64 px layers, and the
  image with ``rgb=1``) also enters shifted by each offset within R pixels (replicate
  padding), so the per-pixel MLP sees a (2R + 1)^2 neighbourhood there, like a small
  convolution (the interpreter's ``context``);
- ``drop=K``: the generator's first K feature maps (the coarsest: 4 px, then 8 px, ...)
  are zeroed when fitting and labeling, so the MLP sees only the finer layers: whether
  coarse, pose-bound features make 16 annotations generalise worse;
- ``norm=1``: every generator feature map is standardised per image and channel (zero
  mean, unit standard deviation over its pixels) when fitting and labeling, so what an
  image's pose or scale adds to a channel everywhere does not reach the MLP;
- ``draw=K``: instead of the preset's annotations, 16 samples drawn at random (seed K)
  from a pool of ``--pool`` candidates (seeds ``sample_seed(9, 7, i)``), labeled by the
  annotator: how much the choice of 16 random images moves the interpreter;
- ``count=N`` (with ``draw`` or ``rare``): N samples instead of 16, how the interpreter
  grows with the annotation budget (``--pool`` must hold N);
- ``rare=1``: 16 samples of the same pool picked greedily for class pixels, each pick
  maximising sum over classes of log(1 + the class's annotated pixels): an annotator
  who picks images that show the small parts (open mouths, visible ears) by eye.

``--save-interpreters`` also writes every refitted variant as an ordinary interpreter
file, ``--out``/interpreters/<variant>/interpreter.safetensors, with the annotation
folder it was fitted on beside it when that is the preset's (``diagnose.py
--interpreter`` reads both). ``drop=K`` is folded into the file: the first layer's
weights on the dropped maps' channels are set to zero, so the file labels ordinary
generator features exactly as the variant labels zeroed ones. Variants that change the
features in other ways (``norm``) or only the prediction (``smooth``, ``prior``) are not
expressible in an interpreter file and are not written (logged).

``--assets DIR`` takes another chain's files instead (the layout ``rebuild.py`` writes:
generator, interpreter, annotations, annotator and its .json; e.g.
``dgan_data/toy/assets_wide``, the wide world's preset).

Usage (results are cached per variant in ``--out``/variants.json; a rerun only fits the
missing ones)::

    python examples/toy/interpreter_variants.py --out runs/variants --threads 1 \\
        --variants shipped steps=1000 steps=8000 dropout=0.3 noise=3 noise=8 \\
        selftrain=32 smooth=0.7 hidden=256x128+steps=8000
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch
import torch.nn.functional as F
from coarse_maps import drop_coarse, fold_drop
from train_gan import build_generator

from dgan_data import Interpreter, Labeler, load_generator
from dgan_data.annotations import Annotations
from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import output_folder, positive_int
from dgan_data.fileio import atomic_write_bytes
from dgan_data.labeler import images_for_labels
from dgan_data.metrics import confusion_matrix, metrics_from_confusion
from dgan_data.presets import get_preset, resolve_preset_file
from dgan_data.seeds import sample_seed, z_from_seeds
from dgan_data.toy import CLASS_NAMES, NUM_CLASSES, class_pixel_rates
from dgan_data.toy.annotator import annotate, load_annotator
from dgan_data.toy.preset import TOY_PRESET_WORLDS

log = logging.getLogger("interpreter_variants")
KEYS = {"steps": int, "hidden": str, "dropout": float, "noise": int, "selftrain": int}
KEYS |= {"keep": float, "smooth": float, "rgb": int, "prior": float, "draw": int, "rare": int}
KEYS |= {"patch": int, "mix": int, "mixfrom": int, "drop": int, "norm": int, "count": int}
#: What ``--assets`` must hold (the layout ``rebuild.py`` writes).
ASSET_FILES = (
    "generator.safetensors",
    "interpreter.safetensors",
    "annotations",
    "annotator.safetensors",
    "annotator.json",
)
#: ``sample_seed`` stream of the candidate pool that ``draw`` and ``rare`` pick from.
POOL_STREAM = 9


class _InputDropout(Interpreter):
    """An interpreter that drops input features while training (prediction unchanged)."""

    dropout = 0.0

    def train_logits(self, x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return super().train_logits(F.dropout(x, self.dropout, training=True), active)


def parse_variant(text: str) -> dict[str, Any]:
    """``"steps=8000+hidden=256x128"`` -> ``{"steps": 8000, "hidden": (256, 128)}``."""
    if text == "shipped":
        return {}
    spec: dict[str, Any] = {}
    for part in text.split("+"):
        key, sep, value = part.partition("=")
        if not sep or key not in KEYS:
            raise ValueError(f"variant {text!r}: expected key=value with a key of {list(KEYS)}")
        try:
            spec[key] = KEYS[key](value)
        except ValueError:
            raise ValueError(f"variant {text!r}: {key}={value!r} is not a number") from None
        if KEYS[key] is float and not math.isfinite(spec[key]):
            raise ValueError(f"variant {text!r}: {key}={value!r} is not a finite number")
        if key == "hidden":
            widths = value.split("x")
            if len(widths) != 2 or not all(w.isdigit() and int(w) > 0 for w in widths):
                raise ValueError(f"variant {text!r}: hidden must be H1xH2, got {value!r}")
            spec[key] = (int(widths[0]), int(widths[1]))
        elif spec[key] < 0 or (key in ("dropout", "keep") and spec[key] >= 1):
            raise ValueError(f"variant {text!r}: {key}={value} is out of range")
        elif key == "steps" and spec[key] < 1:
            raise ValueError(f"variant {text!r}: steps must be >= 1, got {value}")
    if "count" in spec and not ({"draw", "rare"} & set(spec) and spec["count"] > 0):
        raise ValueError(f"variant {text!r}: count needs draw or rare and must be >= 1")
    return spec


def _features(
    G,
    w: torch.Tensor,
    noise: Any = "const",
    generator=None,
    rgb: bool = False,
) -> list[torch.Tensor]:
    """One image's maps to fit on: the generator's features, then its image with ``rgb``
    (the interpreter's ``with_image`` input; a neighbourhood is the interpreter's own)."""
    with torch.no_grad():
        img, feats = G.synthesize(w, noise=noise, generator=generator)
    return [m[0].half() for m in ([*feats, img] if rgb else feats)]


class PickedAnnotations:
    """Samples of the candidate pool with the annotator's masks, read like an
    :class:`Annotations` folder by :func:`training_set` (latents and masks)."""

    def __init__(self, seeds: list[int], masks: list[torch.Tensor], psi: float):
        self.seeds, self.masks, self.psi = seeds, masks, psi

    def latents_w(self, G) -> torch.Tensor:
        with torch.no_grad():
            return G.mapping(z_from_seeds(self.seeds, G.z_dim), truncation_psi=self.psi)


def annotation_pool(G, shipped: Interpreter, annotator, psi: float, size: int):
    """Seeds of ``size`` candidate samples and the annotator's masks of them."""
    labeler = Labeler(G, shipped, truncation_psi=psi)
    seeds = [sample_seed(POOL_STREAM, 7, i) for i in range(size)]
    masks = []
    for start in range(0, size, 50):
        img, _ = labeler.synthesize(seeds[start : start + 50])
        images = images_for_labels(img.float(), labeler.frame, labeler.crop)
        masks.append(annotate(annotator, images.cpu()))
    return seeds, torch.cat(masks)


def pick_rare(masks: torch.Tensor, num: int, num_classes: int) -> list[int]:
    """Greedy picks that maximise sum_c log(1 + annotated pixels of class c): a pixel of
    a class the set barely holds is worth more than one of a class it holds plenty of."""
    if num > len(masks):
        raise ValueError(f"cannot pick {num} of a pool of {len(masks)}")
    flat = [m.flatten() for m in masks]
    counts = torch.stack([torch.bincount(f[f < num_classes], minlength=num_classes) for f in flat])
    counts = counts.double()
    total = torch.zeros(num_classes, dtype=torch.float64)
    chosen: list[int] = []
    for _ in range(num):
        gain = torch.log1p(total + counts).sum(1)
        gain[chosen] = -torch.inf
        best = int(gain.argmax())
        chosen.append(best)
        total += counts[best]
    return chosen


def picked_annotations(
    spec: dict[str, Any], pool: tuple[list[int], torch.Tensor], num: int, psi: float
) -> PickedAnnotations:
    """The ``draw=K`` or ``rare=1`` choice of ``num`` pool samples."""
    seeds, masks = pool
    if "draw" in spec:
        order = torch.randperm(len(seeds), generator=torch.Generator().manual_seed(spec["draw"]))
        idx = order[:num].tolist()
    else:
        idx = pick_rare(masks, num, NUM_CLASSES)
    return PickedAnnotations([seeds[i] for i in idx], [masks[i] for i in idx], psi)


def training_set(
    G, ann: Annotations | PickedAnnotations, spec: dict[str, Any], shipped: Interpreter, psi: float
) -> tuple[list[list[torch.Tensor]], torch.Tensor, dict[str, Any]]:
    """Feature maps and masks to fit on: the annotations, plus noise draws or
    pseudo-labeled samples when the variant asks for them."""
    w = ann.latents_w(G)
    masks = [torch.as_tensor(m).long() for m in ann.masks]
    rgb = bool(spec.get("rgb"))
    feats = [_features(G, w[i : i + 1], rgb=rgb) for i in range(len(w))]
    info: dict[str, Any] = {}
    gen = torch.Generator().manual_seed(1234)
    for i in range(len(w)):
        for _ in range(spec.get("noise", 0)):
            feats.append(_features(G, w[i : i + 1], "random", gen, rgb))
            masks.append(masks[i])
    mixes = spec.get("mix", 0)
    if mixes:
        first = spec.get("mixfrom", 8)
        if not 0 < first < G.num_ws:
            raise ValueError(f"mixfrom={first} must lie in 1..{G.num_ws - 1}")
        mix_gen = torch.Generator().manual_seed(4321)
        for i in range(len(w)):
            with torch.no_grad():
                z = torch.randn(mixes, G.z_dim, generator=mix_gen)
                donors = G.mapping(z, truncation_psi=psi)
            for k in range(mixes):
                mixed = w[i : i + 1].clone()
                mixed[:, first:] = donors[k : k + 1, first:]
                feats.append(_features(G, mixed, rgb=rgb))
                masks.append(masks[i])
        info["style_mixes"] = {"per_annotation": mixes, "from_layer": first}
    pool = spec.get("selftrain", 0)
    if pool:
        labeler = Labeler(G, shipped, truncation_psi=psi)
        seeds = [sample_seed(5, 7, i) for i in range(pool)]
        for start in range(0, pool, 16):
            img, f = labeler.synthesize(seeds[start : start + 16])
            batch = labeler.label_synthesized(img, f, seeds[start : start + 16])
            js = batch.pixel_uncertainty
            threshold = torch.quantile(js.flatten().float(), spec.get("keep", 0.8))
            pseudo = batch.masks.masked_fill(js > threshold, 255)
            for j in range(len(img)):
                feats.append([x[j].half() for x in ([*f, img] if rgb else f)])
                masks.append(pseudo[j])
        info["pseudo_labeled_images"] = pool
    return feats, torch.stack(masks), info


def _gaussian_blur(probs: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(3 * sigma))
    r = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k1 = torch.exp(-(r**2) / (2 * sigma * sigma))
    k1 = k1 / k1.sum()
    K = probs.shape[1]
    kernel = (k1[:, None] * k1[None, :]).expand(K, 1, -1, -1)
    return F.conv2d(F.pad(probs, [radius] * 4, mode="replicate"), kernel, groups=K)


def class_prior(masks: Any, num_classes: int) -> torch.Tensor:
    """Pixel frequency of every class in the annotation masks (ignored pixels left out;
    a class with no pixel gets half a pixel, so its correction stays finite)."""
    stacked = torch.stack([torch.as_tensor(m).long() for m in masks])
    labeled = int((stacked < num_classes).sum())
    rates = class_pixel_rates(stacked, num_classes).clamp(min=0.5 / labeled)
    return (rates / rates.sum()).float()


#: Settings an interpreter file cannot express (feature transforms or prediction rules).
NOT_SAVABLE = ("norm", "smooth", "prior")
#: Settings that change only the shipped interpreter's prediction, not its fit.
PREDICTION_ONLY = {"smooth", "prior"}


def refits(spec: dict[str, Any]) -> bool:
    """Whether a variant fits a new interpreter (not only a prediction rule on the shipped one)."""
    return bool(set(spec) - PREDICTION_ONLY)


def unsavable(spec: dict[str, Any]) -> list[str]:
    """The variant's settings that an interpreter file cannot express."""
    return [k for k in NOT_SAVABLE if spec.get(k)]


def saved_path(out: Path, name: str) -> Path:
    """Where ``--save-interpreters`` writes variant ``name``'s interpreter file."""
    return out / "interpreters" / name / "interpreter.safetensors"


def save_variant(
    interp: Interpreter,
    name: str,
    spec: dict[str, Any],
    out: Path,
    maps: Sequence[torch.Tensor],
    annotations: Annotations | None,
) -> Path | None:
    """Write a refitted variant as an interpreter file (``drop`` folded into its weights),
    with the annotation folder it was fitted on beside it; None (logged) when the
    variant has a setting a file cannot express."""
    if unsavable(spec):
        log.warning(
            "variant %s not saved: %s is not part of an interpreter file", name, unsavable(spec)
        )
        return None
    if spec.get("drop"):
        fold_drop(interp, maps, spec["drop"])
    path = interp.save(saved_path(out, name))
    if annotations is not None:
        annotations.save(path.parent / "annotations")  # file by file, atomically
    return path


def standardize(m: torch.Tensor) -> torch.Tensor:
    """``m`` ([..., H, W]) with zero mean and unit std over its pixels, per channel."""
    x = m.float()
    mean = x.mean((-2, -1), keepdim=True)
    std = x.std((-2, -1), keepdim=True).clamp(min=1e-3)
    return ((x - mean) / std).to(m.dtype)


def adjust_maps(
    maps: Sequence[torch.Tensor], spec: dict[str, Any], generator_maps: int
) -> list[torch.Tensor]:
    """The ``drop`` and ``norm`` settings applied to one image's (or one batch's) maps,
    of which the first ``generator_maps`` are the generator's (an image after them is
    left as it is)."""
    out = drop_coarse(maps, spec.get("drop", 0))
    if spec.get("norm"):
        out = [standardize(m) if j < generator_maps else m for j, m in enumerate(out)]
    return out


def score(
    G,
    interp: Interpreter,
    annotator,
    psi: float,
    count: int,
    spec: dict[str, Any] | None = None,
    prior: torch.Tensor | None = None,
) -> dict:
    """mIoU of the interpreter's labels against the annotator's on fresh samples, with
    the variant's ``spec`` applied to the maps (``drop``, ``norm``) and the prediction
    (``smooth``; ``prior``: the class prior its ``prior`` exponent divides by)."""
    spec = spec or {}
    smooth = spec.get("smooth", 0.0)
    # the labeler synthesises; each chunk is labeled by one prediction of ``interp``
    # (with the generated image after the features when the interpreter reads it)
    labeler = Labeler(G, interp, truncation_psi=psi)
    seeds = [sample_seed(1, 7, i) for i in range(count)]
    cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    for start in range(0, count, 50):
        chunk = seeds[start : start + 50]
        img, feats = labeler.synthesize(chunk)
        feats = adjust_maps(feats, spec, len(feats))
        want_probs = bool(smooth) or prior is not None
        maps = interp.prediction_maps(feats, img)
        pred = interp.predict(maps, output_size=labeler.frame, return_probs=want_probs)
        probs = _gaussian_blur(pred.probs, smooth) if smooth else pred.probs
        if prior is not None:
            probs = probs / prior.to(probs.device)[None, :, None, None]
        labels = probs.argmax(1) if want_probs else pred.labels
        images = images_for_labels(img.float(), labeler.frame, labeler.crop)
        cm += confusion_matrix(labels.cpu(), annotate(annotator, images.cpu()), NUM_CLASSES)
    m = metrics_from_confusion(cm)
    return {"miou": m["miou"], "per_class": dict(zip(CLASS_NAMES, m["iou"].tolist()))}


def run_variant(name: str, args: argparse.Namespace, world: dict[str, Any]) -> dict[str, Any]:
    spec = parse_variant(name)
    G, shipped, psi = world["G"], world["shipped"], world["psi"]
    t0 = time.perf_counter()
    interp, info = shipped, {}
    annotations = world["annotations"]
    if "draw" in spec or "rare" in spec:
        if "draw" in spec and "rare" in spec:
            raise ValueError(f"variant {name!r}: draw and rare are two choices; name one")
        num = spec.get("count", len(annotations.masks))
        if not 0 < num <= args.pool:
            raise ValueError(f"variant {name!r}: count must lie in 1..--pool ({args.pool})")
        if "pool" not in world:
            world["pool"] = annotation_pool(G, shipped, world["annotator"], psi, args.pool)
        annotations = picked_annotations(spec, world["pool"], num, psi)
        pixels = torch.stack([torch.as_tensor(m).long() for m in annotations.masks])
        info["annotation_seeds"] = annotations.seeds
        info["annotated_pixels"] = dict(
            zip(CLASS_NAMES, torch.bincount(pixels.flatten(), minlength=256)[:NUM_CLASSES].tolist())
        )
    if refits(spec):
        feats, masks, extra = training_set(G, annotations, spec, shipped, psi)
        generator_maps = len(feats[0]) - bool(spec.get("rgb"))  # the image comes last
        if spec.get("drop", 0) >= generator_maps:
            raise ValueError(f"variant {name!r}: drop must leave a feature map")
        feats = [adjust_maps(f, spec, generator_maps) for f in feats]
        info |= extra
        first_maps = feats[0]  # one image's maps, for the input layout of a saved file
        cls = Interpreter
        if spec.get("dropout"):
            cls = type("InputDropout", (_InputDropout,), {"dropout": spec["dropout"]})
        steps = spec.get("steps", args.steps)
        interp = cls.fit_features(
            feats,
            masks,
            NUM_CLASSES,
            args.num_models,
            max_steps=steps,
            min_steps=min(1000, steps),
            hidden=spec.get("hidden"),
            with_image=bool(spec.get("rgb")),
            context=spec.get("patch", 0),
            seed=0,
            class_names=list(CLASS_NAMES),
            fingerprint=G.fingerprint(),
            progress=False,
        )
    fit_seconds = time.perf_counter() - t0
    if interp is not shipped and args.save_interpreters:
        preset_annotations = annotations is world["annotations"]  # not a pool pick
        save_variant(
            interp, name, spec, args.out, first_maps, annotations if preset_annotations else None
        )
    prior = None
    if "prior" in spec:
        prior = class_prior(annotations.masks, NUM_CLASSES) ** spec["prior"]
    result = score(G, interp, world["annotator"], psi, args.eval, spec, prior)
    return {"variant": name, **info, "fit_seconds": fit_seconds, **result}


def report(results: dict[str, Any]) -> str:
    rows = sorted(results.values(), key=lambda r: -r["miou"])
    lines = [f"{'variant':<28} {'mIoU':>6} {'teeth':>6} {'ear':>6} {'fit s':>7}"]
    for r in rows:
        pc = r["per_class"]
        lines.append(
            f"{r['variant']:<28} {r['miou']:6.3f} {pc['teeth']:6.3f} {pc['ear']:6.3f} "
            f"{r['fit_seconds']:7.0f}"
        )
    return "\n".join(lines)


def parse_args(
    argv: list[str] | None = None,
    prog: str | None = None,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.Namespace:
    """The options (``prog``: the script named in messages, default this one's; ``parents``:
    parsers of a calling script's own options, listed in ``--help`` too); bad values exit
    2 with one line."""
    ap = OneLineParser(
        prog=prog or Path(__file__).name,
        description=__doc__.split("\n\n")[0],
        parents=list(parents),
    )
    ap.add_argument("--preset", choices=sorted(TOY_PRESET_WORLDS), default="toyface-14")
    ap.add_argument("--out", type=output_folder, default=Path("runs/variants"))
    ap.add_argument("--variants", nargs="+", default=["shipped", "steps=8000"])
    ap.add_argument("--eval", type=positive_int, default=500, help="fresh generated samples scored")
    ap.add_argument(
        "--steps", type=positive_int, default=3000, help="steps when a variant names none"
    )
    ap.add_argument("--num-models", type=positive_int, default=10)
    ap.add_argument(
        "--pool", type=positive_int, default=400, help="candidates that draw/rare pick from"
    )
    ap.add_argument(
        "--assets",
        type=Path,
        default=None,
        help="a chain's asset folder (rebuild.py's layout, e.g. dgan_data/toy/assets_wide: "
        "generator, interpreter, annotations, annotator) instead of the preset's files and "
        "the shipped annotator",
    )
    ap.add_argument(
        "--save-interpreters",
        action="store_true",
        help="also write each refitted variant as an interpreter file under "
        "--out/interpreters/<variant>/ (a cached variant without its file is refitted)",
    )
    ap.add_argument("--threads", type=positive_int, default=None)
    args = ap.parse_args(argv)
    if args.assets is not None:
        missing = [n for n in ASSET_FILES if not (args.assets / n).exists()]
        if missing:
            ap.error(f"--assets {args.assets}: missing {', '.join(missing)}")
    try:
        drops = {v: parse_variant(v).get("drop", 0) for v in args.variants}
    except ValueError as exc:
        ap.error(str(exc))
    if any(drops.values()):  # refused now, not after the variants before it have run
        maps = toy_feature_maps(args.preset)
        for v, drop in drops.items():
            if drop >= maps:
                ap.error(
                    f"variant {v!r}: drop must leave a feature map: the toy generator has "
                    f"{maps}, so drop lies in 0..{maps - 1}"
                )
    return args


def toy_feature_maps(preset: str) -> int:
    """How many feature maps the toy generator of ``preset`` has (``train_gan.py``'s
    network at the preset's resolution, as ``build_preset.py`` requires of ``--assets``)."""
    size = get_preset(preset).image_resolution[0]
    return len(build_generator(size).feature_channels)


def _unsaved(out: Path, name: str) -> bool:
    """Whether a refitted, savable variant's interpreter file is missing from ``out``."""
    spec = parse_variant(name)
    return refits(spec) and not unsavable(spec) and not saved_path(out, name).is_file()


def chain_files(preset: str, assets: Path | None) -> tuple[Path, str | Path, Path | None]:
    """(interpreter file, generator, annotator file) of a preset, or of an ``--assets``
    folder (rebuild.py's layout); the annotator None means the shipped one."""
    if assets is None:
        return resolve_preset_file(preset, "interpreter"), preset, None
    return (
        assets / "interpreter.safetensors",
        assets / "generator.safetensors",
        assets / "annotator.safetensors",
    )


def main(argv: list[str] | None = None, context_shape: str | None = None) -> int:
    """Fit and score the variants. ``context_shape``: the neighbourhood shape another
    script (``context_shapes.py``) fits with, recorded with the results so that results
    of one shape are never reused for another (None: the library's own)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    shipped_path, generator, annotator_path = chain_files(preset.name, args.assets)
    world = {
        "G": load_generator(generator),
        "shipped": Interpreter.load(shipped_path),
        "annotations": Annotations.load(shipped_path.parent / "annotations"),
        "annotator": load_annotator(annotator_path),
        "psi": preset.truncation_psi,
    }
    path = args.out / "variants.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    setting = {"preset": preset.name, "eval": args.eval, "steps": args.steps}
    setting["assets"] = None if args.assets is None else str(args.assets)
    setting |= {"num_models": args.num_models, "pool": args.pool}
    if context_shape is not None:
        setting["context_shape"] = context_shape
    # a file of the library's shape has no context_shape: compared as None both ways
    same = all(saved.get(k) == setting.get(k) for k in {*setting, "context_shape"})
    results = saved.get("results", {}) if same else {}
    for name in args.variants:
        if name in results and not (args.save_interpreters and _unsaved(args.out, name)):
            continue
        log.info("variant %s", name)
        results[name] = run_variant(name, args, world)
        args.out.mkdir(parents=True, exist_ok=True)
        doc = {**setting, "results": results}
        atomic_write_bytes(path, (json.dumps(doc, indent=2) + "\n").encode())
    print(report({k: results[k] for k in args.variants}))
    return 0


if __name__ == "__main__":
    run_script(main)
