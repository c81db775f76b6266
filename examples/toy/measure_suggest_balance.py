"""Measure active annotation (``suggest``) and rare-class balancing on the toy world.

    python examples/toy/measure_suggest_balance.py --out runs/measure16 --reps 3 --threads 2

Active annotation, per repetition r (the annotator plays the human):

- *random*: 16 annotation seeds drawn at random; an interpreter is fitted on them;
- *suggested*: the first 8 of those seeds, an interpreter fitted on them, then
  ``suggest_annotations`` picks 8 more from a pool of ``--pool`` candidates; an
  interpreter is fitted on the 16 (same budget).

Each interpreter is scored against the annotator on ``--eval`` fresh generated samples
(mIoU), and a student U-Net is trained on ``--stream-count`` samples of its stream and
scored on the real test renders. Class coverage of each annotation set is recorded.

``--stream-balance image`` trains both arms' students on streams with
``class_balance="image"`` (stored under ``suggest_balance_image``). ``--with-image`` and
``--context R`` fit every interpreter of parts suggest and novelty with that pixel
context (the kind ``toyface-14`` ships: ``--with-image --context 1``; results under
keys ending in ``_image_ctx1``); the default is DatasetGAN's one-pixel interpreter.
Interpreters are cached in ``--out``/interpreters, so a rerun with other stream settings
(``--stream-balance``, whose results have their own key) refits nothing.
``--arms random`` or ``--arms suggested`` measures one arm; two such processes with the
same ``--out`` can run side by side (one core each): every save joins the other's arms
of a repetition into ``results.json``, and a rerun measures only the arms still missing.

Novelty study (part ``novelty``), per repetition: the first-8 interpreter labels
``--study-pool`` candidates of the suggest pool, the annotator says which hold a class
absent from the first 8 annotations; the AUROC of the image uncertainty score and of
the feature-novelty share for finding those images, and how many of the top 8 by each
hold the class.

Balancing: with the preset's interpreter, a student on ``--stream-count`` samples of the
stream with ``class_balance=None`` and one with ``"image"``, same steps; per-class test
IoU, mIoU and the achieved per-class image rates.

``--preset`` picks the toy world too: ``toyface-14-wide`` draws its annotations with
the wide world's annotator and scores the students on wide test renders. One ``--out``
holds one preset's results (another preset's folder is refused). ``--no-students``
measures the interpreters alone (minutes instead of hours; the students' entries stay
null and a later run without the flag trains them, refitting nothing).

Writes ``results.json`` (every run) and prints mean +- std tables. ``results.json``
records, per result key, the settings its numbers depend on (``settings``; part suggest:
``--pool``, ``--eval``, ``--fit-steps`` and the students' ``--stream-count``, ``--steps``,
``--batch-size`` and ``--test-count``; novelty: ``--study-pool`` and ``--fit-steps``;
balance: the students' settings; a ``--no-students`` run records no student settings,
and they are compared only once a student is stored). A rerun that would add results of
other settings to them is refused (exit 2, naming the settings): give another ``--out``.
A folder written before the record holds the default settings' results.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch

from dgan_data import DatasetGANStream, Interpreter, Labeler, load_generator
from dgan_data.annotations import Annotations
from dgan_data.augment import BatchAugment
from dgan_data.cli import USER_ERRORS, OneLineParser, run_script, script_error
from dgan_data.cli.common import output_folder, positive_int
from dgan_data.cli.models import context_radius
from dgan_data.conventions import generator_to_uint8
from dgan_data.downstream.train import (
    build_segmentation_model,
    evaluate,
    metrics_summary,
    real_batches,
    render_labeled,
    train_segmentation,
)
from dgan_data.fileio import read_json, write_json
from dgan_data.interpreter.context import MAX_CONTEXT
from dgan_data.metrics import auroc as metrics_auroc
from dgan_data.metrics import confusion_matrix, metrics_from_confusion
from dgan_data.novelty import FeatureNovelty
from dgan_data.presets import get_preset
from dgan_data.seeds import derive_seed, sample_seed, z_from_seeds
from dgan_data.suggest import (
    COVERAGE_BY,
    DEFAULT_COVERAGE_BY,
    DEFAULT_COVERAGE_TARGET,
    MIN_CLASS_PIXELS,
    annotation_features,
    candidate_seeds,
    suggest_annotations,
)
from dgan_data.toy import CLASS_NAMES, NUM_CLASSES, PALETTE, SPLITS
from dgan_data.toy.annotator import annotate, load_annotator, toy_annotator_path
from dgan_data.toy.preset import TOY_PRESET_WORLDS, toy_world_of

log = logging.getLogger("measure16")
#: What ``--parts`` can name.
PARTS = ("suggest", "novelty", "balance")
#: Annotations the suggested arm adds to its first 8 (from ``--pool`` candidates).
SUGGESTED = 8
RARE = ("eyebrow", "iris", "pupil", "nostril", "teeth")


#: The settings each part's results depend on (recorded per result key, and checked
#: before a rerun adds to them).
PART_SETTINGS = {
    "suggest": ("pool", "eval", "fit_steps", "stream_count", "steps", "batch_size", "test_count"),
    "novelty": ("study_pool", "fit_steps"),
    "balance": ("stream_count", "steps", "batch_size", "test_count"),
}
#: Part suggest's settings that only its students use: not recorded by a --no-students
#: run, and compared only when the stored results hold a student.
STUDENT_SETTINGS = ("stream_count", "steps", "batch_size", "test_count")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = build_parser()
    args = ap.parse_args(argv)
    check_args(ap, args)
    return args


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(
        prog=Path(__file__).name,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("--preset", choices=sorted(TOY_PRESET_WORLDS), default="toyface-14")
    ap.add_argument("--out", type=output_folder, default=Path("runs/measure16"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pool", type=int, default=2000)
    ap.add_argument("--eval", type=int, default=300, help="fresh generated samples")
    ap.add_argument("--stream-count", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=1500, help="student steps")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--fit-steps", type=int, default=2000, help="interpreter max steps")
    ap.add_argument("--test-count", type=int, default=1000)
    ap.add_argument(
        "--balance-seeds", type=int, default=1, help="stream and student seeds per mode"
    )
    ap.add_argument("--study-pool", type=int, default=600, help="candidates of the novelty study")
    ap.add_argument("--parts", default="suggest,novelty,balance")
    ap.add_argument(
        "--stream-balance",
        choices=["none", "image"],
        default="none",
        help="class_balance of both arms' streams in part suggest (results under their own key)",
    )
    ap.add_argument(
        "--with-image", action="store_true", help="interpreters read the generated image"
    )
    ap.add_argument(
        "--context",
        type=context_radius,
        default=0,
        help=f"interpreters' neighbourhood, 0..{MAX_CONTEXT}",
    )
    ap.add_argument(
        "--arms",
        default="random,suggested",
        help="arms of part suggest this process measures; two processes with one arm each"
        " and the same --out can run side by side",
    )
    ap.add_argument(
        "--rep",
        type=int,
        default=None,
        help="measure only this repetition of part suggest (0..reps-1); processes with"
        " different --rep and the same --out can run side by side",
    )
    ap.add_argument(
        "--coverage-by",
        choices=COVERAGE_BY,
        default=DEFAULT_COVERAGE_BY,
        help="how suggest counts a candidate's classes for coverage (recorded per repetition)",
    )
    ap.add_argument(
        "--coverage-target",
        type=int,
        default=DEFAULT_COVERAGE_TARGET,
        help="annotated images each class should appear in, for suggest's coverage gain"
        " (recorded per repetition)",
    )
    ap.add_argument(
        "--no-students",
        action="store_true",
        help="part suggest measures the interpreters only (students stay null)",
    )
    ap.add_argument("--threads", type=positive_int, default=None)
    return ap


def check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (exit 2, one line) settings that cannot be measured; ``args.arms`` becomes
    a list."""
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"--parts must name {', '.join(PARTS)} (comma-separated), got {unknown}")
    if args.no_students and "balance" in parts:
        ap.error("--no-students: part balance is students only; leave it out of --parts")
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(args.arms) - {"random", "suggested"})
    if unknown or not args.arms:
        ap.error(f"--arms must name random and/or suggested, got {unknown or 'none'}")
    for name in (
        "reps",
        "pool",
        "eval",
        "stream_count",
        "steps",
        "batch_size",
        "fit_steps",
        "test_count",
        "balance_seeds",
        "study_pool",
        "coverage_target",
    ):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.test_count > len(SPLITS["test"]):
        ap.error(f"--test-count must be at most {len(SPLITS['test'])} (the test split), "
                 f"got {args.test_count}")  # fmt: skip
    if "suggest" in parts and "suggested" in args.arms and args.pool < SUGGESTED:
        ap.error(f"--pool must hold the {SUGGESTED} candidates suggest picks, got {args.pool}")
    if args.rep is not None and not 0 <= args.rep < args.reps:
        ap.error(f"--rep must be in 0..{args.reps - 1} (--reps {args.reps}), got {args.rep}")


def result_parts(args: argparse.Namespace) -> dict[str, str]:
    """The result keys this run adds to, each with its part."""
    parts = args.parts.split(",")
    keys = {}
    if "suggest" in parts:
        keys[suggest_key(args)] = "suggest"
    if "novelty" in parts:
        keys["novelty" + interpreter_kind(args)] = "novelty"
    if "balance" in parts:
        keys["balance"] = "balance"
    return keys


def has_students(runs: Any) -> bool:
    """Whether part suggest's stored repetitions hold a trained student in any arm."""
    return isinstance(runs, list) and any(
        isinstance(run, dict) and isinstance(run.get(arm), dict) and run[arm].get("student")
        for run in runs
        for arm in ("random", "suggested")
    )


def compared_settings(part: str, stored: Any, args: argparse.Namespace) -> tuple[str, ...]:
    """The settings of ``part`` that must match its stored results: part suggest's student
    settings only when this run trains students and a stored arm has one."""
    names = PART_SETTINGS[part]
    if part == "suggest" and (args.no_students or not has_students(stored)):
        names = tuple(n for n in names if n not in STUDENT_SETTINGS)
    return names


def settings_conflict(results: dict[str, Any], args: argparse.Namespace) -> str | None:
    """Why this run may not add to ``results`` (a result key measured with other
    settings), or None. Keys with results but no record hold the default settings'."""
    recorded = results.get("settings", {})
    defaults = build_parser()
    for key, part in result_parts(args).items():
        names = compared_settings(part, results.get(key), args)
        if key in recorded:
            before = recorded[key]
        elif results.get(key):
            before = {n: defaults.get_default(n) for n in names}
        else:
            continue
        differ = [n for n in names if before.get(n) != getattr(args, n)]
        if differ:
            flags = [f"--{n.replace('_', '-')}" for n in differ]
            then = ", ".join(f"{f} {before.get(n)}" for f, n in zip(flags, differ))
            now = ", ".join(f"{f} {getattr(args, n)}" for f, n in zip(flags, differ))
            return f"its {key} results were measured with {then} (this run: {now})"
    return None


def record_settings(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Note in ``results`` the settings of the result keys this run adds to; a
    ``--no-students`` run leaves part suggest's student settings as they were (those of
    the students stored, if any), since it trains none."""
    recorded = results.setdefault("settings", {})
    for key, part in result_parts(args).items():
        names = PART_SETTINGS[part]
        if part == "suggest" and args.no_students:
            names = tuple(n for n in names if n not in STUDENT_SETTINGS)
        recorded[key] = {**recorded.get(key, {}), **{n: getattr(args, n) for n in names}}


def annotations_for(G, annotator, seeds: list[int], psi: float) -> Annotations:
    with torch.no_grad():
        w = G.mapping(z_from_seeds(seeds, G.z_dim), truncation_psi=psi)
        img, _ = G.synthesize(w, noise="const")
    images = generator_to_uint8(img).permute(0, 3, 1, 2)
    masks = annotate(annotator, images.float() / 255)
    return Annotations.from_arrays(
        seeds=seeds,
        masks=masks.to(torch.uint8),
        class_names=list(CLASS_NAMES),
        truncation_psi=psi,
        images=images,
        generator_fingerprint=G.fingerprint(),
        palette=PALETTE.tolist(),
    )


def coverage(ann: Annotations) -> dict[str, int]:
    present = torch.stack(
        [
            torch.bincount(m.flatten().long(), minlength=256)[:NUM_CLASSES] >= MIN_CLASS_PIXELS
            for m in ann.masks
        ]
    )
    return dict(zip(CLASS_NAMES, present.sum(0).tolist()))


def interp_vs_annotator(labeler: Labeler, annotator, count: int) -> dict[str, Any]:
    seeds = [sample_seed(99, 7, i) for i in range(count)]
    cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    for i in range(0, count, 50):
        b = labeler.label(seeds[i : i + 50])
        cm += confusion_matrix(b.masks.cpu(), annotate(annotator, b.images.cpu()), NUM_CLASSES)
    m = metrics_from_confusion(cm)
    return {"miou": m["miou"], "per_class": dict(zip(CLASS_NAMES, m["iou"].tolist()))}


def stream_student(
    labeler_or_preset: Any, args, test, seed: int, class_balance: Any = None
) -> dict[str, Any]:
    if isinstance(labeler_or_preset, Labeler):
        lab = labeler_or_preset
        stream = DatasetGANStream(
            generator=lab.G,
            interpreter=lab.interpreter,
            batch_size=64,
            seed=seed,
            truncation_psi=lab.truncation_psi,
            device="cpu",
            class_balance=class_balance,
        )
    else:
        stream = DatasetGANStream(
            labeler_or_preset, batch_size=64, seed=seed, device="cpu", class_balance=class_balance
        )
    images, masks, n = [], [], 0
    for bi, bm in stream:
        images.append(bi.cpu())
        masks.append(bm.cpu())
        n += len(bi)
        if n >= args.stream_count:
            break
    stats = stream.statistics()
    images, masks = torch.cat(images)[: args.stream_count], torch.cat(masks)[: args.stream_count]
    torch.manual_seed(seed)
    net = build_segmentation_model(NUM_CLASSES, "unet")
    batches = real_batches(images, masks, args.batch_size, BatchAugment(), seed=seed)
    train_segmentation(net, batches, args.steps, lr=3e-3, progress=False)
    summary = metrics_summary(evaluate(net, test, NUM_CLASSES), list(CLASS_NAMES))
    summary["stream_statistics"] = stats
    return summary


def fit(G, ann: Annotations, args, seed: int, cache: Path | None = None) -> Interpreter:
    """An interpreter on ``ann``; with ``cache``, loaded from there when an earlier run of
    the same settings fitted it (its annotation seeds are checked) and saved there."""
    seeds = [int(s) for s in ann.seeds]
    if cache is not None and cache.is_file():
        interp = Interpreter.load(cache)
        same_kind = (interp.with_image, interp.context) == (args.with_image, args.context)
        if same_kind and interp.training_info.get("annotation_seeds") == seeds:
            return interp
    interp = Interpreter.fit(
        G,
        ann,
        num_models=10,
        seed=seed,
        max_steps=args.fit_steps,
        progress=False,
        with_image=args.with_image,
        context=args.context,
    )
    interp.training_info["annotation_seeds"] = seeds
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        interp.save(cache)
    return interp


def interpreter_kind(args) -> str:
    """Suffix of the result keys and cache folders of an interpreter kind ('' one-pixel)."""
    return ("_image" if args.with_image else "") + (f"_ctx{args.context}" if args.context else "")


def interpreter_cache(args) -> Path:
    """Folder of the cached interpreters of this fit length and interpreter kind (parts
    suggest and novelty share the first-8 interpreters there)."""
    return args.out / "interpreters" / f"fit{args.fit_steps}{interpreter_kind(args)}"


def suggest_key(args) -> str:
    """Results of part suggest: ``suggest``, or ``suggest_balance_image`` with balanced
    streams; then the interpreter kind (``_image_ctx1``...)."""
    key = "suggest" if args.stream_balance == "none" else f"suggest_balance_{args.stream_balance}"
    return key + interpreter_kind(args)


def measure_suggest(args, G, annotator, psi, test, results) -> None:
    runs = results.setdefault(suggest_key(args), [])
    balance = None if args.stream_balance == "none" else args.stream_balance
    cache = interpreter_cache(args)
    for r in range(args.reps) if args.rep is None else [args.rep]:
        run = next((x for x in runs if x["rep"] == r), None)
        todo = [name for name in args.arms if run is None or needs(run.get(name), args)]
        if not todo:
            continue
        seeds = [derive_seed(1000 + r, 0x5EED, i) for i in range(16)]
        if run is None:
            run = {"rep": r, "random_seeds": seeds}
            runs.append(run)
            runs.sort(key=lambda x: x["rep"])
        sets = {"random": seeds}
        if "suggested" in todo:
            first8 = annotations_for(G, annotator, seeds[:8], psi)
            interp8 = fit(G, first8, args, r, cache / f"rep{r}_first8.safetensors")
            report = suggest_annotations(
                Labeler(G, interp8, truncation_psi=psi),
                SUGGESTED,
                pool=args.pool,
                seed=r,
                existing=first8,
                coverage_by=args.coverage_by,
                coverage_target=args.coverage_target,
            )
            run["coverage_by"] = args.coverage_by
            run["coverage_target"] = args.coverage_target
            run["suggested_seeds"] = [s.seed for s in report.suggestions]
            run["reasons"] = [s.reason for s in report.suggestions]
            sets["suggested"] = seeds[:8] + run["suggested_seeds"]
        for name in todo:
            t0 = time.time()
            ann = annotations_for(G, annotator, sets[name], psi)
            interp = fit(G, ann, args, r, cache / f"rep{r}_{name}.safetensors")
            lab = Labeler(G, interp, truncation_psi=psi)
            run[name] = {
                "coverage": coverage(ann),
                "interpreter_vs_annotator": interp_vs_annotator(lab, annotator, args.eval),
                "student": None
                if args.no_students
                else stream_student(lab, args, test, seed=r, class_balance=balance),
                "seconds": time.time() - t0,
            }
            log.info(
                "rep %d %s: interp %.4f student %s",
                r,
                name,
                run[name]["interpreter_vs_annotator"]["miou"],
                "-" if args.no_students else f"{run[name]['student']['miou']:.4f}",
            )
            save(args, results)


def needs(arm: dict[str, Any] | None, args) -> bool:
    """Whether an arm of a repetition is still to measure: never measured, or measured
    without its student and this run trains students."""
    return arm is None or (arm.get("student") is None and not args.no_students)


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float | None:
    """:func:`dgan_data.metrics.auroc`, None (JSON null) when a side is empty."""
    value = metrics_auroc(scores.numpy(), positive.numpy())
    return None if math.isnan(value) else value


def measure_novelty(args, G, annotator, psi, results) -> None:
    runs = results.setdefault("novelty" + interpreter_kind(args), [])
    for r in range(len(runs), args.reps):
        seeds = [derive_seed(1000 + r, 0x5EED, i) for i in range(8)]
        first8 = annotations_for(G, annotator, seeds, psi)
        absent = [k for k, n in enumerate(coverage(first8).values()) if n < 1]
        first8_cache = interpreter_cache(args) / f"rep{r}_first8.safetensors"
        labeler = Labeler(G, fit(G, first8, args, r, first8_cache), truncation_psi=psi)
        model = FeatureNovelty(annotation_features(labeler, first8), seed=r)
        pool = candidate_seeds(r, args.study_pool)  # suggest's pool
        score, share, holds, mass, peak, pixels = [], [], [], [], [], []
        for i in range(0, len(pool), 50):
            img, feats = labeler.synthesize(pool[i : i + 50])
            batch = labeler.label_synthesized(
                img, feats, pool[i : i + 50], class_mass=True, class_peak=MIN_CLASS_PIXELS
            )
            score.append(batch.image_uncertainty)
            mass.append(batch.class_mass[:, absent].sum(1).double())
            peak.append(batch.class_peak[:, absent].sum(1).double())
            pixels.append(torch.isin(batch.masks, torch.tensor(absent)).flatten(1).sum(1))
            novelty, _ = model.pixel_novelty(feats)
            share.append((novelty > 1).flatten(1).double().mean(1))
            ann = annotate(annotator, batch.images)
            counts = torch.stack([torch.bincount(m.flatten(), minlength=NUM_CLASSES) for m in ann])
            held = counts[:, absent] >= MIN_CLASS_PIXELS
            holds.append(held.any(1) if absent else torch.zeros(len(ann)) > 0)
        score, share, holds = torch.cat(score), torch.cat(share), torch.cat(holds)
        mass, peak, pixels = torch.cat(mass), torch.cat(peak), torch.cat(pixels).double()
        run = {
            "rep": r,
            "absent_classes": [CLASS_NAMES[k] for k in absent],
            "images_holding_them": int(holds.sum()),
            "pool": len(pool),
            "auroc_uncertainty": auroc(score, holds),
            "auroc_novelty": auroc(share, holds),
            "top8_uncertainty": int(holds[score.argsort(descending=True)[:8]].sum()),
            "top8_novelty": int(holds[share.argsort(descending=True)[:8]].sum()),
            # the absent classes' expected pixels (suggest's coverage by mass), their
            # likeliest pixels' mean probabilities summed (by peak) and their pixels in the
            # interpreter's labels (by labels)
            "labeled_holding_them": int((pixels >= MIN_CLASS_PIXELS).sum()),
            "auroc_class_mass": auroc(mass, holds),
            "auroc_class_peak": auroc(peak, holds),
            "top8_class_peak": int(holds[peak.argsort(descending=True)[:8]].sum()),
            "auroc_label_pixels": auroc(pixels, holds),
            "top8_class_mass": int(holds[mass.argsort(descending=True)[:8]].sum()),
            "top8_label_pixels": int(holds[pixels.argsort(descending=True)[:8]].sum()),
        }
        log.info("rep %d novelty study: %s", r, run)
        runs.append(run)
        save(args, results)


def measure_balance(args, preset, test, results) -> None:
    runs = results.setdefault("balance", {})
    for seed in range(args.balance_seeds):
        for mode in (None, "image"):
            key = balance_key(mode, seed)
            if key in runs:
                continue
            runs[key] = stream_student(preset, args, test, seed=seed, class_balance=mode)
            log.info("balance %s: student %.4f", key, runs[key]["miou"])
            save(args, results)


def balance_key(mode: Any, seed: int) -> str:
    """Result key of one balancing student (seed 0 keeps the single-seed key)."""
    return str(mode) if seed == 0 else f"{mode}_seed{seed}"


def merge_results(on_disk: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """``ours`` joined into what another process wrote to the same ``results.json`` since
    this one read it: lists of repetitions are joined by ``rep`` (arms of one repetition
    from both sides; ours wins where both hold one), dicts are joined by key."""
    merged = dict(on_disk)
    for key, value in ours.items():
        theirs = on_disk.get(key)
        if isinstance(value, list) and isinstance(theirs, list):
            by_rep = {x["rep"]: dict(x) for x in theirs}
            for x in value:
                by_rep.setdefault(x["rep"], {}).update(x)
            merged[key] = [by_rep[r] for r in sorted(by_rep)]
        elif isinstance(value, dict) and isinstance(theirs, dict):
            merged[key] = {**theirs, **value}
        else:
            merged[key] = value
    return merged


def save(args, results) -> None:
    """Write ``results.json`` atomically, joined with what a side-by-side process (other
    ``--arms``, same ``--out``) wrote meanwhile."""
    path = args.out / "results.json"
    on_disk = read_json(path) if path.is_file() else {}
    write_json(path, merge_results(on_disk, json.loads(json.dumps(results, default=float))))


def mean_std(values: list[float]) -> str:
    """Mean +- sample std in %; one value has no spread to show (n/a, not 0.0)."""
    mean = f"{100 * np.mean(values):.1f}"
    if len(values) < 2:
        return f"{mean} +- n/a"
    return f"{mean} +- {100 * np.std(values, ddof=1):.1f}"


def report(results: dict[str, Any]) -> str:
    lines = []
    for key in sorted(k for k in results if k.startswith("suggest")):
        runs = results[key]
        if not runs:
            continue
        streams = "balanced streams" if "_balance_" in key else "streams unbalanced"
        kind = key.split("_balance_image")[-1].removeprefix("suggest") or " one-pixel"
        lines.append(
            f"active annotation, {streams}, interpreters{kind.replace('_', ' ')} (mean +- std):"
        )
        for name in ("random", "suggested"):
            arm = [r[name] for r in runs if name in r]
            if not arm:
                continue
            interp = [a["interpreter_vs_annotator"]["miou"] for a in arm]
            trained = [a["student"] for a in arm if a.get("student")]
            student, teeth = "-", "-"
            if trained:
                student = mean_std([s["miou"] for s in trained])
                teeth = mean_std([s["per_class_iou"]["teeth"] or 0.0 for s in trained])
            missing = [sum(v < 1 for v in a["coverage"].values()) for a in arm]
            lines.append(
                f"  {f'{name} ({len(arm)} reps)':<19} interpreter vs annotator {mean_std(interp)}  "
                f"student on real {student}  student teeth IoU {teeth}  "
                f"classes absent: {missing}"
            )
    for key in sorted(k for k in results if k.startswith("novelty")):
        study = results[key]
        kind = key.removeprefix("novelty").replace("_", " ") or " one-pixel"
        lines.append(
            f"finding images of a class absent from the first 8 annotations (interpreters{kind}):"
        )
        for r in study:
            shown = {k: r[k] for k in r if k != "rep"}
            lines.append(f"  rep {r['rep']}: {shown}")
    bal = results.get("balance", {})
    if bal:
        lines.append("balancing (student per-class IoU %):")
        # the first cell as wide as the rows' keys (12), so each name heads its column
        lines.append(f"  {'mode':>12} " + " ".join(f"{n[:7]:>8}" for n in (*RARE, "mIoU")))
        for key, s in bal.items():
            cells = [f"{100 * (s['per_class_iou'][n] or 0):8.1f}" for n in RARE]
            lines.append(f"  {key:>12} " + " ".join(cells) + f" {100 * s['miou']:8.1f}")
        for mode in ("None", "image"):
            values = [s["miou"] for k, s in bal.items() if k.split("_seed")[0] == mode]
            if len(values) > 1:
                lines.append(f"  {mode:>12} mIoU over {len(values)} seeds: {mean_std(values)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.out / "results.json"
    try:  # a damaged file is named in one line, not a JSONDecodeError traceback
        results = read_json(path) if path.is_file() else {}
    except USER_ERRORS as err:
        return script_error(Path(__file__).name, err)
    preset = get_preset(args.preset)
    # folders written before presets were recorded hold toyface-14's results
    measured = results.get("preset", "toyface-14") if results else preset.name
    if measured != preset.name:
        print(
            f"error: {path} holds results of preset {measured}, not {preset.name}; "
            "give another --out",
            file=sys.stderr,
        )
        return 2
    conflict = settings_conflict(results, args)
    if conflict:
        print(
            f"error: {path}: {conflict}; give another --out (a copy of its interpreters/ "
            "folder there saves the refits)",
            file=sys.stderr,
        )
        return 2
    record_settings(results, args)
    world = toy_world_of(preset.name)
    results |= {"preset": preset.name, "world": world}
    G = load_generator(preset.name)
    annotator = load_annotator(toy_annotator_path(world))
    test = render_labeled("test", args.test_count, variation=world)
    parts = args.parts.split(",")
    if "suggest" in parts:
        measure_suggest(args, G, annotator, preset.truncation_psi, test, results)
    if "novelty" in parts:
        measure_novelty(args, G, annotator, preset.truncation_psi, results)
    if "balance" in parts:
        measure_balance(args, preset.name, test, results)
    print(report(json.loads(path.read_text()) if path.is_file() else results))
    return 0


if __name__ == "__main__":
    run_script(main)
