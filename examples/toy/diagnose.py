"""Measure each link of the toy world's DatasetGAN chain, with the same student everywhere.

    python examples/toy/diagnose.py --out runs/diagnose --steps 2000 --count 2000 --threads 2

The chain is: real renders -> GAN -> 16 annotated samples -> interpreter -> stream ->
student. Each link is measured by training the same student (the annotator's U-Net,
same init, augmentation, steps and batch) on one data set and scoring it on the real
test renders (exact masks):

- ``R``: ``--count`` real renders (train split, unseen by the annotator) labeled by the
  annotator (the toy human);
- ``G``: ``--count`` GAN samples at the stream's truncation, labeled by the annotator;
- ``S``: ``--count`` samples of the stream (interpreter labels, uncertainty filter);
- ``F``: 16 real renders with exact masks (the few-shot baseline);
- ``A``: ``--full-count`` real renders with exact masks (full supervision).

Reported ratios (targets from the project's label-quality issue):

- GAN usefulness = G / R (>= 0.90): how much the generator's images are worth;
- interpreter usefulness = S / G (>= 0.95): how much the interpreter's labels are worth;
- few-shot ratio = F / A (<= 0.75): how hard the world is for 16 images.

Also: class coverage of the preset's annotations (every class in >= 3 annotated
images with at least 4 pixels of it), the interpreter against the annotator on fresh
generated samples (mIoU, per class, and in three equal groups of the samples ordered
by head size: where it loses, small faces or all), and the uncertainty study: Spearman
correlation of the image score with the per-image error, what dropping the most
uncertain 10 % does to the labels' error, the AUROC of the pixel JS divergence as an
error detector, and per class the share of pixels ``ignore_uncertain_pixels`` would
remove with their error rate.

``--preset toyface-14-wide`` measures the chain of the wider toy world (see the README's
*A wider world*): F, A, R and the test set are that world's renders, and R, G and S use
its shipped generator, interpreter and annotator. ``--world`` sets the renders' world
apart from the preset's; R, G and S then need a generator, an interpreter and an
annotator of that world (``--generator``, ``--interpreter``, ``--annotator``).

Writes ``diagnose.json`` and prints a table. Everything is seeded; data sets and student
results are cached in ``--out`` under keys that carry a digest of the files they depend
on (annotator; generator + interpreter), so a rerun only trains the arms that are
missing, and a rebuilt annotator or preset never reuses stale data. The keys also carry
the settings the results depend on: G and S data ``--seed`` (``_seed1``), students
``--steps`` and ``--batch-size`` (``_steps2000x16``), ``--lr``, ``--seed`` and
``--test-count`` (``_lr0.001``, ``_seed1``, ``_test500``; each only when not the
default, so the default keys stay as before).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch

from dgan_data import DatasetGANStream, Labeler
from dgan_data.annotations import Annotations
from dgan_data.augment import BatchAugment
from dgan_data.cli import USER_ERRORS, OneLineParser, one_line, run_script, script_error
from dgan_data.cli.common import (
    fraction,
    int_range,
    non_negative_float,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
    seed_int,
    unit_float,
)
from dgan_data.conventions import IGNORE_INDEX
from dgan_data.downstream.train import (
    build_segmentation_model,
    evaluate,
    metrics_summary,
    real_batches,
    render_batches,
    render_labeled,
    train_segmentation,
)
from dgan_data.fileio import atomic_torch_save, atomic_write_bytes, read_json
from dgan_data.generators.torch_files import safe_torch_load
from dgan_data.interpreter.io import read_interpreter_metadata
from dgan_data.metrics import auroc, confusion_matrix, metrics_from_confusion
from dgan_data.presets import get_preset, resolve_preset_file
from dgan_data.seeds import sample_seed
from dgan_data.suggest import MIN_CLASS_PIXELS
from dgan_data.toy import CLASS_NAMES, NUM_CLASSES, SPLITS, VARIATIONS, world_tag
from dgan_data.toy.annotator import annotate, load_annotator, toy_annotator_path
from dgan_data.toy.preset import toy_world_of
from dgan_data.toy.quality import render_images
from dgan_data.uncertainty import class_mean_scores

log = logging.getLogger("diagnose")

#: Real renders for R: train seeds 20,000+ (the GAN saw the first 10,000, the annotator none).
R_START = 20_000
#: Real renders R can take: the train seeds from R_START on.
R_COUNT = len(SPLITS["train"]) - R_START
#: The few-shot draw of the demo's first draw (pool seeds 9000-9015).
FEWSHOT_START = 9000
#: Few-shot draws the pool holds (draw d: pool seeds FEWSHOT_START + 16 d, 16 of them).
FEWSHOT_DRAWS = (len(SPLITS["pool"]) - FEWSHOT_START) // 16
#: Student defaults; other values go into the student keys (see ``student_suffix``).
DEFAULT_LR = 3e-3
DEFAULT_TEST_COUNT = 1000
#: groups of images by head size in the interpreter report (so --eval-count >= this)
HEAD_SIZE_GROUPS = 3
TARGETS = {
    "gan_usefulness": (">=", 0.90),
    "interpreter_usefulness": (">=", 0.95),
    "few_shot_ratio": ("<=", 0.75),
    "annotator_miou": (">=", 0.85),
    "interpreter_vs_annotator_miou": (">=", 0.80),
}


def ignore_thresholds(text: str) -> dict[str, float]:
    """argparse type of ``--ignore-uncertain-pixels``: ``T`` or ``CLASS=T,...`` -> class
    name -> JS threshold (every class for a bare ``T``)."""
    pairs = [part.partition("=") for part in text.split(",")]
    if len(pairs) == 1 and not pairs[0][1]:
        pairs = [(name, "=", pairs[0][0]) for name in CLASS_NAMES]
    out = {}
    for name, eq, value in pairs:
        if not eq or name not in CLASS_NAMES:
            raise argparse.ArgumentTypeError(
                f"{text!r}: give T or CLASS=T,... with classes of {', '.join(CLASS_NAMES)}"
            )
        out[name] = non_negative_float(value)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = OneLineParser(
        prog=Path(__file__).name,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument(
        "--preset",
        default="toyface-14",
        help="the chain's shipped files (toyface-14-wide: the wide world's)",
    )
    ap.add_argument("--out", type=output_folder, default=Path("runs/diagnose"))
    ap.add_argument("--count", type=positive_int, default=2000, help="images of R, G and S")
    ap.add_argument(
        "--full-count",
        type=int_range(1, len(SPLITS["pool"])),
        default=5000,
        help="real renders of A",
    )
    ap.add_argument("--steps", type=positive_int, default=2000, help="student steps per arm")
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--lr", type=positive_float, default=DEFAULT_LR)
    ap.add_argument(
        "--test-count", type=int_range(1, len(SPLITS["test"])), default=DEFAULT_TEST_COUNT
    )
    ap.add_argument(
        "--eval-count",
        type=int_range(HEAD_SIZE_GROUPS, 10**6),
        default=500,
        help="fresh generated samples for interpreter-vs-annotator and uncertainty",
    )
    ap.add_argument("--arms", default="R,G,S,F,A", help="which students to train")
    ap.add_argument(
        "--fewshot-draws",
        type=int_range(1, FEWSHOT_DRAWS),
        default=1,
        help="draws of the 16 real images for F (draw d: pool seeds 9000 + 16 d, "
        "student seed --seed + d, as in the demo); F is their mean",
    )
    ap.add_argument(
        "--fewshot-from",
        type=non_negative_int,
        default=0,
        help="train only the draws from this one on (another process, same --out, can "
        "train the others at the same time); the report counts every draw in --out",
    )
    ap.add_argument("--psi", type=unit_float, default=None, help="default: the preset's")
    ap.add_argument(
        "--interpreter",
        type=Path,
        default=None,
        help="interpreter file for S and the interpreter scores (default: the preset's); "
        "coverage reads the annotations folder beside it",
    )
    ap.add_argument(
        "--drop-uncertain",
        type=fraction,
        default=None,
        help="the S stream's share of most uncertain images dropped (default: the stream's)",
    )
    ap.add_argument(
        "--ignore-uncertain-pixels",
        type=ignore_thresholds,
        default=None,
        metavar="SPEC",
        help="S only: set to 255 (ignored by the student) the stream pixels whose JS "
        "divergence exceeds a threshold, per class of their label: CLASS=T,CLASS=T (classes "
        "not named are kept), or T for every class",
    )
    ap.add_argument(
        "--class-balance",
        choices=("none", "image"),
        default="none",
        help="the S stream's class_balance (image: every class in >= 30 %% of the images)",
    )
    ap.add_argument(
        "--soft-labels",
        action="store_true",
        help="train S on the stream's soft labels (the ensemble's mean class probabilities)",
    )
    ap.add_argument(
        "--world",
        choices=sorted(VARIATIONS),
        default=None,
        help="the toy world of the real renders (R, F, A and the test set); wide: larger "
        "pose, scale, expression and lighting ranges and occluders. Default: the world "
        "of --preset (toyface-14: base, toyface-14-wide: wide); in another world, R, G "
        "and S need --generator, --interpreter and --annotator of that world",
    )
    ap.add_argument(
        "--generator",
        type=Path,
        default=None,
        help="generator file for G and S (default: the preset's)",
    )
    ap.add_argument(
        "--annotator",
        type=Path,
        default=None,
        help="annotator file (and the .json beside it) for R and G labels and the "
        "interpreter scores (default: the shipped annotator of the preset's world)",
    )
    ap.add_argument("--seed", type=seed_int, default=0)
    ap.add_argument("--threads", type=positive_int, default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:  # the preset's files resolve now, not after --out is made
        preset = get_preset(args.preset)
        # every score is against the toy annotator's classes: another preset's labels
        # were scored as toy class ids after every student had trained
        if tuple(preset.class_names) != tuple(CLASS_NAMES):
            ap.error(
                f"--preset {args.preset}: its classes are not the toy classes "
                f"({list(preset.class_names)[:4]}... vs {list(CLASS_NAMES)[:4]}...); "
                "diagnose measures a toy preset's chain (toyface-14, toyface-14-wide)"
            )
        for kind in ("generator", "interpreter"):
            if getattr(args, kind) is None:
                resolve_preset_file(preset.name, kind)
    except USER_ERRORS as err:
        ap.error(f"--preset {args.preset}: {one_line(err)}")
    if args.interpreter is not None and args.interpreter.is_file():  # else named on use
        try:
            names = read_interpreter_metadata(args.interpreter).get("class_names")
        except USER_ERRORS as err:
            ap.error(f"--interpreter {args.interpreter}: {one_line(err)}")
        if names is not None and tuple(names) != tuple(CLASS_NAMES):
            ap.error(f"--interpreter {args.interpreter}: its classes are not the toy classes")
    args.preset_world = toy_world_of(args.preset)
    args.world = args.world or args.preset_world
    if args.fewshot_from >= args.fewshot_draws:
        ap.error(
            f"--fewshot-from {args.fewshot_from} must be below --fewshot-draws "
            f"({args.fewshot_draws})"
        )
    bad = set(args.arms.split(",")) - set("RGSFA")
    if bad:
        ap.error(f"--arms: unknown arms {sorted(bad)} (valid: R, G, S, F, A)")
    if "R" in args.arms.split(",") and args.count > R_COUNT:
        ap.error(f"--count {args.count}: arm R has {R_COUNT} real renders (train seeds "
                 f"{R_START}+); give at most {R_COUNT} or leave R out of --arms")  # fmt: skip
    missing = missing_world_files(args)
    if missing and set(args.arms.split(",")) - set("FA"):
        ap.error(
            f"--world {args.world}: arms R, G and S need {', '.join(missing)} of that "
            f"world ({args.preset}'s files are the {args.preset_world} world's); F and A "
            "need none"
        )
    for name, path in own_files(args).items():
        if path is not None and not path.is_file():
            ap.error(f"--{name} {path}: no such file")
    if args.annotator is not None and not args.annotator.with_suffix(".json").is_file():
        ap.error(f"--annotator {args.annotator}: its description {args.annotator.stem}.json "
                 "is not beside it")  # fmt: skip
    return args


def own_files(args: argparse.Namespace) -> dict[str, Path | None]:
    """The chain's files given on the command line (None: the shipped one)."""
    return {"generator": args.generator, "interpreter": args.interpreter,
            "annotator": args.annotator}  # fmt: skip


def missing_world_files(args: argparse.Namespace) -> list[str]:
    """Flags of the chain's files that another world needs but were not given (the
    preset's files are its own world's); empty in the preset's world."""
    if args.world == args.preset_world:
        return []
    return [f"--{name}" for name, path in own_files(args).items() if path is None]


def file_digest(*paths: Path) -> str:
    """First 8 hex digits of the SHA-256 of the files' bytes, in order."""
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:8]


#: What each tensor of a cached sample set holds: its number of dims and whether it is
#: floating point (images and scores) or integer (labels and seeds).
SAMPLE_TENSORS = {
    "images": (4, True),
    "labels": (3, False),
    "pixel_js": (3, True),
    "score": (1, True),
    "probs": (4, True),
    "seeds": (1, False),
}


def check_samples(value: Any, keys: tuple[str, ...]) -> None:
    """Raise ValueError unless ``value`` is a dict holding ``keys`` (at least), each of
    its ``SAMPLE_TENSORS`` a tensor of the right kind with one row per image."""
    if not isinstance(value, dict) or any(k not in value for k in keys):
        raise ValueError(f"not a dict with {', '.join(keys)}")
    rows = None
    for key, (dims, floating) in SAMPLE_TENSORS.items():
        t = value.get(key)
        if t is None and key not in keys:
            continue
        if not isinstance(t, torch.Tensor) or t.dim() != dims or t.is_floating_point() != floating:
            kind = "float" if floating else "integer"
            raise ValueError(f"{key}: not a {dims}-D {kind} tensor")
        if rows is not None and len(t) != rows:
            raise ValueError(f"{key}: {len(t)} rows, not {rows}")
        rows = len(t)


def cached(path: Path, make: Any, keys: tuple[str, ...] = ("images", "labels")) -> Any:
    """``make()``, saved at ``path`` (atomically: a concurrent run never reads half a file).

    A cache that does not load (truncated, damaged, hostile: read with the package's
    memory guard) or fails :func:`check_samples` is only a cache: it is deleted, with a
    warning naming it, and made again."""
    if path.is_file():
        try:
            value = safe_torch_load(path)
            check_samples(value, keys)
            return value
        except ValueError as err:  # safe_torch_load's CheckpointError is one
            log.warning("%s: unusable cache (%s); making it again", path, one_line(err))
            path.unlink(missing_ok=True)
    value = make()
    atomic_torch_save(value, path)
    return value


def read_results(path: Path) -> dict[str, Any]:
    """``diagnose.json`` as a dict ({} when there is none); errors name the file."""
    results = read_json(path) if path.is_file() else {}
    if not isinstance(results.get("students", {}), dict):
        raise ValueError(f"{path}: students is not a JSON object")
    return results


def merge_students(results_path: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Add to ``results`` the students other runs wrote to the file meanwhile (ours win);
    returns what the file holds."""
    on_disk = read_results(results_path)
    results["students"] = {**on_disk.get("students", {}), **results["students"]}
    return on_disk


def record_student(results_path: Path, results: dict[str, Any], key: str, value: Any) -> None:
    """Add one student to ``results`` and to the file, keeping students other runs wrote."""
    on_disk = merge_students(results_path, results)
    results["students"][key] = value
    on_disk["students"] = results["students"]
    atomic_write_bytes(results_path, json.dumps(on_disk, indent=1).encode())


def annotate_all(annotator: Any, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([annotate(annotator, images[i : i + 256]) for i in range(0, len(images), 256)])


def gan_samples(labeler: Labeler, count: int, seed: int) -> dict[str, torch.Tensor]:
    """Fresh generated samples with the interpreter's labels and scores (no filtering)."""
    out: dict[str, list[torch.Tensor]] = {"images": [], "labels": [], "pixel_js": [], "score": []}
    seeds = [sample_seed(seed, 7, i) for i in range(count)]
    for start in range(0, count, 64):
        b = labeler.label(seeds[start : start + 64])
        out["images"].append(b.images.cpu())
        out["labels"].append(b.masks.cpu())
        out["pixel_js"].append(b.pixel_uncertainty.cpu())
        out["score"].append(b.image_uncertainty.cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def stream_samples(
    preset: str, count: int, seed: int, psi: float, **options: Any
) -> dict[str, torch.Tensor]:
    """The first ``count`` samples of the preset's stream (``options``: stream settings)."""
    stream = DatasetGANStream(
        preset, batch_size=64, seed=seed, truncation_psi=psi, device="cpu", output="dict", **options
    )
    parts: dict[str, list[torch.Tensor]] = {"images": [], "labels": [], "probs": [], "seeds": []}
    n = 0
    for batch in stream:
        parts["seeds"].append(torch.as_tensor(batch["seed"]).cpu())
        parts["images"].append(batch["image"].as_subclass(torch.Tensor).cpu())
        parts["labels"].append(batch["mask"].as_subclass(torch.Tensor).cpu())
        if "probs" in batch:
            parts["probs"].append(batch["probs"].cpu())
        n += len(batch["seed"])
        if n >= count:
            break
    return {k: torch.cat(v)[:count] for k, v in parts.items() if v}


def ignore_uncertain(
    samples: dict[str, torch.Tensor], labeler: Labeler, thresholds: dict[str, float]
) -> dict[str, torch.Tensor]:
    """``samples`` (stream samples with their seeds) with the pixels whose JS divergence
    exceeds their label's threshold set to 255. The pixel JS comes from labeling the
    same seeds again, which must give the stream's labels (checked up to 0.1 % of pixels)."""
    limit = torch.full((NUM_CLASSES,), float("inf"))
    for name, value in thresholds.items():
        limit[CLASS_NAMES.index(name)] = value
    labels = samples["labels"].clone()
    seeds = samples["seeds"].tolist()
    for start in range(0, len(seeds), 64):
        batch = labeler.label(seeds[start : start + 64])
        part = labels[start : start + 64]
        differ = (batch.masks.cpu().long() != part.long()).float().mean().item()
        if differ > 1e-3:  # batch composition may move a few border pixels, no more
            raise RuntimeError(
                f"relabeling samples {start}.. gave other labels than the stream on "
                f"{100 * differ:.2f} % of the pixels"
            )
        js = batch.pixel_uncertainty.cpu()
        part[js > limit[part.long()]] = IGNORE_INDEX
    ignored = (labels == IGNORE_INDEX).float().mean().item()
    log.info("ignore_uncertain: %.1f %% of the stream's pixels set to 255", 100 * ignored)
    return {**samples, "labels": labels}


def train_student(
    name: str,
    batches: Any,
    args: argparse.Namespace,
    test: tuple[torch.Tensor, torch.Tensor],
    seed: int | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A fresh student trained on ``batches`` and its scores on ``test``."""
    torch.manual_seed(args.seed if seed is None else seed)
    net = build_segmentation_model(NUM_CLASSES, "unet")
    t0 = time.perf_counter()
    train_segmentation(
        net, batches, args.steps, lr=args.lr, progress=not args.no_progress, desc=name
    )
    metrics = evaluate(net, test, NUM_CLASSES)
    summary = metrics_summary(metrics, list(CLASS_NAMES))
    summary["train_seconds"] = time.perf_counter() - t0
    return net, summary


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = a.argsort().argsort(), b.argsort().argsort()
    return float(np.corrcoef(ra, rb)[0, 1])


def _drop_effect(score: np.ndarray, error: np.ndarray) -> dict[str, float]:
    """Spearman of a score with the per-image error, and the mean error left after
    dropping the 10 % highest scores (versus dropping a random 10 %)."""
    drop = max(1, len(score) // 10)
    keep = np.setdiff1d(np.arange(len(score)), np.argsort(-score)[:drop])
    return {
        "spearman_with_error": spearman(score, error),
        "error_after_dropping_top10pct": float(error[keep].mean()),
    }


def uncertainty_study(gen: dict[str, torch.Tensor], reference: torch.Tensor) -> dict[str, Any]:
    """How well the interpreter's uncertainty predicts its errors against the annotator."""
    labels, js, score = gen["labels"], gen["pixel_js"], gen["score"].numpy()
    wrong = labels != reference
    error = wrong.flatten(1).float().mean(1).numpy()
    rng = np.random.default_rng(0)
    drop = max(1, len(score) // 10)
    random_keep = np.setdiff1d(np.arange(len(score)), rng.permutation(len(score))[:drop])
    scores = {
        "top10pct_js (default)": score,
        "mean_js": js.flatten(1).mean(1).numpy(),
        "class_mean_js": class_mean_scores(js, labels, NUM_CLASSES).numpy(),
    }
    flat_js, flat_wrong = js.flatten().numpy(), wrong.flatten().numpy()
    threshold = float(np.quantile(flat_js, 0.9))
    per_class = {}
    for k, name in enumerate(CLASS_NAMES):
        in_class = (labels == k).flatten().numpy()
        if not in_class.any():
            continue
        ignored = in_class & (flat_js > threshold)
        per_class[name] = {
            "share_ignored": float(ignored.sum() / in_class.sum()),
            "error_of_ignored": float(flat_wrong[ignored].mean()) if ignored.any() else None,
            "error_of_kept": float(flat_wrong[in_class & ~ignored].mean())
            if (in_class & ~ignored).any()
            else None,
        }
    return {
        "images": len(score),
        "error_all": float(error.mean()),
        "error_after_dropping_random10pct": float(error[random_keep].mean()),
        "image_scores": {name: _drop_effect(v, error) for name, v in scores.items()},
        "spearman_score_vs_image_error": spearman(score, error),
        "error_after_dropping_top10pct": _drop_effect(score, error)[
            "error_after_dropping_top10pct"
        ],
        "pixel_js_auroc": auroc(flat_js, flat_wrong),
        "ignore_threshold_js_p90": threshold,
        "ignore_per_class": per_class,
    }


#: Classes outside the head: a head's size is its annotated pixels of every other class.
NOT_HEAD = ("background", "neck", "cloth")


def by_head_size(
    labels: torch.Tensor, reference: torch.Tensor, groups: int = HEAD_SIZE_GROUPS
) -> list[dict]:
    """The interpreter against the annotator in ``groups`` equal groups of images ordered
    by head size (the annotator's pixels of head classes): where the link loses, small
    faces or large ones. Each group: its head-size range, image count and mIoU."""
    head = torch.ones(NUM_CLASSES + 1, dtype=torch.bool)
    head[[CLASS_NAMES.index(name) for name in NOT_HEAD]] = False
    head[NUM_CLASSES] = False  # ignored pixels (255, clamped) are no class
    area = head[reference.long().clamp(max=NUM_CLASSES)].flatten(1).sum(1)
    order = torch.argsort(area, stable=True)
    out = []
    for part in torch.tensor_split(order, groups):
        conf = confusion_matrix(labels[part], reference[part], NUM_CLASSES)
        out.append(
            {
                "head_pixels": [int(area[part].min()), int(area[part].max())],
                "images": len(part),
                "miou": metrics_from_confusion(conf)["miou"],
            }
        )
    return out


def coverage(interp_path: Path) -> dict[str, Any]:
    """Annotated images per class in the annotation folder beside the interpreter: with at
    least ``MIN_CLASS_PIXELS`` pixels of the class (the coverage rule of ``suggest`` and
    ``build_preset.py``), and with any."""
    folder = interp_path.parent / "annotations"
    if not (folder / "manifest.json").is_file():
        return {"folder": None}
    ann = Annotations.load(folder)
    pixels = torch.stack(
        [torch.bincount(m.flatten().long(), minlength=256)[:NUM_CLASSES] for m in ann.masks]
    )
    counts = (pixels >= MIN_CLASS_PIXELS).sum(0).tolist()
    return {
        "folder": str(folder),
        "images": len(ann),
        "min_class_pixels": MIN_CLASS_PIXELS,
        "images_per_class": dict(zip(CLASS_NAMES, counts)),
        "images_with_any_pixel": dict(zip(CLASS_NAMES, (pixels > 0).sum(0).tolist())),
        "all_classes_in_3_images": bool(min(counts) >= 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure the chain; an annotator, generator or interpreter that does not load (or a
    generator the interpreter does not fit) exits 2 with one line, before ``--out`` is
    made, whichever ``--arms`` are trained."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run(args)
    except USER_ERRORS as err:
        return script_error(Path(__file__).name, err)


def run(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset)
    psi = preset.truncation_psi if args.psi is None else args.psi
    ann_path = toy_annotator_path(args.preset_world) if args.annotator is None else args.annotator
    annotator = load_annotator(ann_path)
    ann_tag = file_digest(ann_path)
    shipped_interp = resolve_preset_file(preset.name, "interpreter")
    interp_path = shipped_interp if args.interpreter is None else args.interpreter
    gen_path = resolve_preset_file(preset.name, "generator")
    gen_path = gen_path if args.generator is None else args.generator
    # G depends on the generator alone; its key keeps the preset's interpreter so every
    # interpreter shares one G
    gan_tag = file_digest(ann_path, gen_path, shipped_interp)
    preset_tag = file_digest(ann_path, gen_path, interp_path)
    labeler = Labeler.from_sources(
        preset.name, generator=gen_path, interpreter=interp_path, truncation_psi=psi, device="cpu"
    )
    out = args.out  # made once every file of the chain has loaded
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    test = render_labeled("test", args.test_count, variation=args.world)

    def real_r() -> dict[str, torch.Tensor]:
        seeds = SPLITS["train"][R_START : R_START + args.count]
        images, _ = render_images(seeds, variation=args.world)
        return {"images": images, "labels": annotate_all(annotator, images)}

    def gan_g() -> dict[str, torch.Tensor]:
        gen = gan_samples(labeler, args.count, args.seed)
        return {"images": gen["images"], "labels": annotate_all(annotator, gen["images"])}

    tag = world_tag(args.world)
    seeded = seed_tag(args.seed)  # G and S depend on --seed (seed 0 keeps its earlier key)
    key_of = {
        "R": f"R_{args.count}{tag}_{ann_tag}",
        "G": f"G_{args.count}_psi{psi:g}{seeded}_{gan_tag}",
        "S": f"S_{args.count}_psi{psi:g}{stream_tag(args)}{seeded}_{preset_tag}",
        "F": "F_16",
        "A": f"A_{args.full_count}",
    }
    data = {
        "R": lambda: cached(cache / f"{key_of['R']}.pt", real_r),
        "G": lambda: cached(cache / f"{key_of['G']}.pt", gan_g),
        "S": lambda: cached(
            cache / f"{key_of['S']}.pt",
            lambda: stream_samples(
                preset.name,
                args.count,
                args.seed,
                psi,
                generator=gen_path,
                interpreter=interp_path,
                **stream_options(args),
            ),
            keys=("images", "labels", "seeds"),
        ),
    }
    augment = BatchAugment()
    results_path = out / "diagnose.json"
    results: dict[str, Any] = read_results(results_path)
    results.setdefault("students", {})
    suffix = student_suffix(args)
    for arm in args.arms.split(","):
        if arm == "F":
            for draw in range(args.fewshot_from, args.fewshot_draws):
                key = fewshot_key(draw) + suffix
                if key in results["students"]:
                    continue
                start = FEWSHOT_START + 16 * draw
                images, masks = render_labeled("pool", 16, start=start, variation=args.world)
                seed = args.seed + draw
                batches = real_batches(images, masks, args.batch_size, augment, seed=seed)
                _, trained = train_student(key, batches, args, test, seed=seed)
                record_student(results_path, results, key, trained)
                log.info("%s: test mIoU %.4f", key, trained["miou"])
            continue
        key = f"{key_of[arm]}{suffix}"
        if key in results["students"]:
            continue
        if arm in data:
            d = data[arm]()
            if arm == "S" and args.ignore_uncertain_pixels:
                d = ignore_uncertain(d, labeler, args.ignore_uncertain_pixels)
            batches = real_batches(
                d["images"], d["labels"], args.batch_size, augment, seed=args.seed,
                probs=d.get("probs"),
            )  # fmt: skip
        else:
            batches = render_batches(
                "pool",
                args.batch_size,
                count=args.full_count,
                augment=augment,
                seed=args.seed,
                variation=args.world,
            )
        _, trained = train_student(key, batches, args, test)
        record_student(results_path, results, key, trained)
        log.info("%s: test mIoU %.4f", key, trained["miou"])

    merge_students(results_path, results)
    students = results["students"]
    fewshot = [
        students[fewshot_key(d) + suffix]["miou"]
        for d in range(args.fewshot_draws)
        if fewshot_key(d) + suffix in students
    ]

    def miou(arm: str) -> float | None:
        if arm == "F":
            return float(np.mean(fewshot)) if fewshot else None
        s = students.get(key_of[arm] + suffix)
        return None if s is None else s["miou"]

    def ratio(a: str, b: str) -> float | None:
        x, y = miou(a), miou(b)
        return None if x is None or y is None else x / y

    study = chain_study(args, labeler, annotator, ann_path, interp_path, psi, cache, preset_tag)
    results.update(
        {
            "preset": preset.name,
            "world": args.world,
            "annotator_digest": ann_tag,
            "preset_digest": preset_tag,
            "gan_digest": gan_tag,
            "interpreter_file": None if args.interpreter is None else args.interpreter.name,
            "generator_file": None if args.generator is None else args.generator.name,
            "annotator_file": None if args.annotator is None else args.annotator.name,
            "truncation_psi": psi,
            "stream_options": stream_options(args),
            "ignore_uncertain_pixels": args.ignore_uncertain_pixels,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "test_count": args.test_count,
            "fewshot_draws": {
                "miou": fewshot,
                "mean": miou("F"),
                "std": float(np.std(fewshot, ddof=1)) if len(fewshot) > 1 else None,
            },
            "count": args.count,
            "ratios": {
                "gan_usefulness": ratio("G", "R"),
                "interpreter_usefulness": ratio("S", "G"),
                "few_shot_ratio": ratio("F", "A"),
                "stream_over_few_shot_points": None
                if miou("S") is None or miou("F") is None
                else 100 * (miou("S") - miou("F")),
            },
            **study,
            "targets": TARGETS,
        }
    )
    atomic_write_bytes(results_path, json.dumps(results, indent=1, default=float).encode())
    print(format_report(results, suffix, key_of))
    return 0


def chain_study(
    args: argparse.Namespace,
    labeler: Labeler,
    annotator: Any,
    ann_path: Path,
    interp_path: Path,
    psi: float,
    cache: Path,
    preset_tag: str,
) -> dict[str, Any]:
    """The annotator's score, the interpreter against the annotator, the annotations'
    class coverage and the uncertainty study; all None in a world other than the
    preset's without that world's files, where the preset's files would be measured."""
    if missing_world_files(args):
        reason = (
            f"--world {args.world} without --generator, --interpreter and --annotator: "
            f"{args.preset}'s files are the {args.preset_world} world's"
        )
        log.info("interpreter and uncertainty study skipped: %s", reason)
        return {
            "study_skipped": reason,
            "annotator_miou": None,
            "interpreter_vs_annotator_miou": None,
            "interpreter_vs_annotator_per_class": None,
            "interpreter_vs_annotator_by_head_size": None,
            "coverage": None,
            "uncertainty": None,
        }
    # the evaluation samples depend on --seed (seed 0 keeps its earlier key)
    gen = cached(
        cache / f"eval_{args.eval_count}_psi{psi:g}{seed_tag(args.seed)}_{preset_tag}.pt",
        lambda: gan_samples(labeler, args.eval_count, args.seed + 1),
        keys=("images", "labels", "pixel_js", "score"),
    )
    reference = annotate_all(annotator, gen["images"])
    interp_scores = metrics_from_confusion(confusion_matrix(gen["labels"], reference, NUM_CLASSES))
    ann_meta = read_json(ann_path.with_suffix(".json"))
    return {
        "study_skipped": None,
        "annotator_miou": ann_meta.get("test_miou"),
        "interpreter_vs_annotator_miou": interp_scores["miou"],
        "interpreter_vs_annotator_per_class": dict(zip(CLASS_NAMES, interp_scores["iou"].tolist())),
        "interpreter_vs_annotator_by_head_size": by_head_size(gen["labels"], reference),
        "coverage": coverage(interp_path),
        "uncertainty": uncertainty_study(gen, reference),
    }


def stream_options(args: argparse.Namespace) -> dict[str, Any]:
    """The S stream's settings that differ from the stream's defaults."""
    options: dict[str, Any] = {}
    if args.drop_uncertain is not None:
        options["drop_uncertain"] = args.drop_uncertain
    if args.class_balance != "none":
        options["class_balance"] = args.class_balance
    if args.soft_labels:
        options["soft_labels"] = True
    return options


def stream_tag(args: argparse.Namespace) -> str:
    """Part of the S key naming non-default stream settings ("" for the defaults)."""
    options = stream_options(args)
    tag = f"_drop{options['drop_uncertain']:g}" if "drop_uncertain" in options else ""
    tag += f"_bal{options['class_balance']}" if "class_balance" in options else ""
    if args.ignore_uncertain_pixels:
        tag += "_ign" + "".join(f"{k}{v:g}" for k, v in args.ignore_uncertain_pixels.items())
    return tag + ("_soft" if options.get("soft_labels") else "")


def seed_tag(seed: int) -> str:
    """Part of a key naming ``--seed`` ("" for seed 0, whose keys predate the tag)."""
    return f"_seed{seed}" if seed else ""


def student_suffix(args: argparse.Namespace) -> str:
    """End of every student key: the world, steps and batch size, then ``--lr``,
    ``--seed`` and ``--test-count`` where they are not the defaults (a student trained
    or scored otherwise is another result, never a cached one)."""
    suffix = f"{world_tag(args.world)}_steps{args.steps}x{args.batch_size}"
    if args.lr != DEFAULT_LR:
        suffix += f"_lr{args.lr:g}"
    suffix += seed_tag(args.seed)
    if args.test_count != DEFAULT_TEST_COUNT:
        suffix += f"_test{args.test_count}"
    return suffix


def fewshot_key(draw: int) -> str:
    """Student key of few-shot draw ``draw`` (draw 0 keeps the single-draw key)."""
    return "F_16" if draw == 0 else f"F_16_draw{draw}"


def format_report(results: dict[str, Any], suffix: str, key_of: dict[str, str]) -> str:
    lines = [f"students ({suffix[1:]}), test mIoU on real renders:"]
    draws = results.get("fewshot_draws", {})
    for arm, key in key_of.items():
        s = results["students"].get(key + suffix)
        shown = "-" if s is None else f"{100 * s['miou']:.1f}"
        if arm == "F" and len(draws.get("miou", [])) > 1:
            values = " ".join(f"{100 * v:.1f}" for v in draws["miou"])
            shown = (
                f"{100 * draws['mean']:.1f} +- {100 * draws['std']:.1f} "
                f"({len(draws['miou'])} draws: {values})"
            )
        lines.append(f"  {arm} {key:<34} {shown}")
    lines.append("links:")
    values = {
        **results["ratios"],
        "annotator_miou": results["annotator_miou"],
        "interpreter_vs_annotator_miou": results["interpreter_vs_annotator_miou"],
    }
    for name, value in values.items():
        target = TARGETS.get(name)
        shown = "-" if value is None else f"{value:.3f}"
        goal = f" (target {target[0]} {target[1]})" if target else ""
        lines.append(f"  {name:<34} {shown}{goal}")
    if results.get("study_skipped"):
        lines.append(f"  interpreter and uncertainty study skipped: {results['study_skipped']}")
        return "\n".join(lines)
    cov = results["coverage"]
    if cov.get("images_per_class"):
        lines.append(
            f"  annotated images per class (>= {cov['min_class_pixels']} px): "
            f"{cov['images_per_class']}"
        )
    sizes = results.get("interpreter_vs_annotator_by_head_size") or []
    if sizes:
        shown = ", ".join(
            f"{g['head_pixels'][0]}-{g['head_pixels'][1]} px {g['miou']:.3f}" for g in sizes
        )
        lines.append(f"  interpreter vs annotator by head size: {shown}")
    u = results["uncertainty"]
    lines.append(
        f"  uncertainty: Spearman(score, error) {u['spearman_score_vs_image_error']:.2f}; "
        f"error {u['error_all']:.4f} -> {u['error_after_dropping_top10pct']:.4f} (drop top 10 %)"
        f" vs {u['error_after_dropping_random10pct']:.4f} (random 10 %); pixel JS AUROC "
        f"{u['pixel_js_auroc']:.3f}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    run_script(main)
