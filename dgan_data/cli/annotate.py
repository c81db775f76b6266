"""Subcommands about annotating: import-masks (masks drawn in annotation tools), suggest
(which images to annotate next) and merge-annotations."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..annotations import Annotations
from ..annotations.format import MANIFEST, SUBDIRS, TRUNCATION_CENTER_FILE
from ..annotations.tools import (
    CROWD_MODES,
    FORMATS,
    UNLABELED_MODES,
    ImportReport,
    SampleImport,
    import_masks,
)
from ..conventions import short_list
from ..fileio import folder_lock
from ..labeler import Labeler
from ..suggest import (
    COVERAGE_BY,
    DEFAULT_COVERAGE_BY,
    DEFAULT_COVERAGE_TARGET,
    MAX_POOL,
    free_id_prefix,
    suggest_annotations,
    suggestion_conflicts,
    suggestion_crop,
    write_suggestions,
)
from .common import (
    Add,
    UsageError,
    annotation_output_folder,
    check_new_folder,
    count_at_most,
    device_name,
    finite_float,
    given_path,
    id_prefix_type,
    positive_int,
    preset_or_files_args,
    seed_int,
    skip_unannotated_arg,
    truncation_psi,
)
from .summaries import listed_samples

#: Largest --coverage (annotated images per class): beyond an int64 it overflowed.
MAX_COVERAGE = 1_000_000


_EPILOG = """\
examples:
  dgan-data import-masks --format coco instances_default.json --annotations ann/
  dgan-data import-masks --format labelme ann/images/ --annotations ann/ --map face=skin
  dgan-data import-masks --format cvat-mask cvat_export/ --annotations ann/ --unlabeled ignore
  dgan-data import-masks --format voc VOCdevkit/VOC2012/ --annotations ann/ \\
      --source-classes background,hair,skin
  dgan-data import-masks --format png my_masks/ --annotations ann/ --map 7=ignore
  dgan-data import-masks --format palette painted/ --annotations ann/

SRC: coco a JSON file; labelme a folder of .json (or one); cvat-mask the export folder
(labelmap.txt, SegmentationClass/); voc a folder with SegmentationClass/ (or of PNGs);
png a folder of single-channel class-id PNGs; palette a folder of colour PNGs painted
in the annotation folder's palette (colour i is class i; 224,224,192 is ignore unless a
class uses it; ann/masks/ itself converts in place). Items match samples by image file name
(no folders, no extension). Nothing is written if anything is wrong (exit code 2);
exit code 1: masks written but the folder does not load yet (e.g. samples without
annotation)."""


def parse_mapping(pairs: Sequence[str] | None) -> dict[str, str]:
    """``--map NAME=CLASS`` pairs as a dict (the last ``=`` splits, so names may hold one)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, target = pair.rpartition("=")
        if not sep or not name or not target:
            raise UsageError(f"--map expects NAME=CLASS, got {pair!r}")
        if name in out and out[name] != target:
            raise UsageError(f"--map {name}: given twice ({out[name]!r} and {target!r})")
        out[name] = target
    return out


def parse_names(text: str | None) -> list[str] | None:
    """``a,b,c`` as a list of names; empty names are refused."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise UsageError(f"--source-classes {text!r}: empty name (use 'a,b,c')")
    return names


def _line(s: SampleImport) -> str:
    if s.status == "missing":
        return f"  {s.id}  missing    no annotation in the export: mask not written"
    if s.status == "kept":
        return f"  {s.id}  kept       no annotation in the export: {s.mask} left as it is"
    if s.status == "empty":
        return (
            f"  {s.id}  empty      nothing drawn in {s.source}: mask not written "
            "(--keep-empty writes it)"
        )
    classes = ", ".join(s.classes) or "-"
    ignored = f", {100 * s.ignored:.1f}% ignore" if s.ignored else ""
    empty = f" ({s.empty_objects} cover no pixel: outside the image?)" if s.empty_objects else ""
    where = f"{s.mask} <- {s.source}"
    objects = f"{s.objects} object{'s' if s.objects != 1 else ''}"
    return f"  {s.id}  {s.status:<9}  {where}: {objects}{empty}; {classes}{ignored}"


def _print_report(report: ImportReport) -> int:
    for s in report.samples:
        print(_line(s))
    counts = {k: len(report.ids(k)) for k in ("new", "replaced", "unchanged", "kept")}
    verb = "would write" if report.dry_run else "wrote"
    print(
        f"{verb} {counts['new'] + counts['replaced']} masks ({counts['new']} new, "
        f"{counts['replaced']} replaced), {counts['unchanged']} unchanged; "
        f"{len(report.missing)} sample{'s' if len(report.missing) != 1 else ''} without "
        f"annotation ({counts['kept']} kept their mask)"
    )
    if report.dry_run:
        return 0
    if report.ok:
        root = shlex.quote(str(report.root))
        print(
            f"folder check: ok, ready for: dgan-data fit --generator G --annotations {root} "
            "--out interpreter.safetensors   (G: the generator or preset it was sampled with)"
        )
        print(
            f"to look at the masks over their images: dgan-data preview --annotations {root} "
            "--out check.png"
        )
        return 0
    count = len(report.problems)
    print(
        f"folder check: {count} problem{'s' if count != 1 else ''} (not ready for fit):",
        file=sys.stderr,
    )
    for problem in report.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def cmd_import_masks(args: argparse.Namespace) -> int:
    report = import_masks(
        args.src,
        args.annotations,
        format=args.format,
        mapping=parse_mapping(args.map),
        unlabeled=args.unlabeled,
        crowd=args.crowd,
        source_classes=parse_names(args.source_classes),
        keep_empty=args.keep_empty,
        dry_run=args.dry_run,
    )
    return _print_report(report)


def register(add: Add) -> None:
    """Add this module's subcommands through the parser factory ``add``."""
    p = add(
        "import-masks",
        cmd_import_masks,
        "Fill an annotation folder's masks from an annotation tool's export "
        "(COCO, LabelMe, CVAT masks, Pascal VOC, class-id PNGs, colour PNGs in the "
        "folder's palette).",
        _EPILOG,
    )
    p.add_argument(
        "src", type=given_path, metavar="SRC", help="the tool's export (file or folder, see below)"
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="the export's format")
    p.add_argument(
        "--annotations",
        type=given_path,
        required=True,
        metavar="DIR",
        help="annotation folder (made by dgan-data sample)",
    )
    p.add_argument(
        "--map",
        action="append",
        metavar="NAME=CLASS",
        help="tool label NAME (png: the id) -> folder class name, class id or 'ignore'; "
        "repeatable (default: labels map to the class of the same name)",
    )
    p.add_argument(
        "--unlabeled",
        choices=UNLABELED_MODES,
        default="background",
        help="pixels nobody labelled: class 0 (background, the default) or 255 (ignore)",
    )
    p.add_argument(
        "--crowd",
        choices=CROWD_MODES,
        default="class",
        help="COCO iscrowd regions: their category (class, default) or 255 (ignore)",
    )
    p.add_argument(
        "--source-classes",
        metavar="A,B,C",
        help="voc: names of the palette indices 0, 1, 2, ... (default: the 21 VOC classes)",
    )
    p.add_argument(
        "--keep-empty",
        action="store_true",
        help="write all-unlabeled masks for images the export lists with nothing drawn",
    )
    p.add_argument("--dry-run", action="store_true", help="check and report, write nothing")

    p = add(
        "suggest",
        cmd_suggest,
        "Choose which generated images to annotate next: the ones the interpreter is least "
        "sure about, covering rare classes, not near duplicates.",
        "examples:\n"
        "  dgan-data suggest --generator G.pkl --interpreter i.safetensors --num 8 --out next/\n"
        "  dgan-data suggest toyface-14 --num 8 --pool 2000 --annotations ann/ --out next/\n"
        "  dgan-data merge-annotations ann/ next/ --out all/   # after drawing next/masks",
    )
    preset_or_files_args(p, ("generator", "interpreter"))
    p.add_argument("--generator", default=None, help="checkpoint path or preset name")
    p.add_argument("--interpreter", default=None, help="interpreter file or preset name")
    p.add_argument("--num", type=positive_int, required=True, help="images to choose")
    p.add_argument(
        "--pool",
        type=count_at_most(MAX_POOL),
        default=2000,
        help=f"candidates (default 2000, at most {MAX_POOL:,})",
    )
    p.add_argument(
        "--out", type=annotation_output_folder, required=True, help="annotation folder to write"
    )
    p.add_argument(
        "--annotations",
        type=given_path,
        default=None,
        help="existing annotation folder: its masks count for coverage and diversity",
    )
    skip_unannotated_arg(p, "--annotations: count")
    p.add_argument(
        "--coverage",
        type=count_at_most(MAX_COVERAGE),
        default=DEFAULT_COVERAGE_TARGET,
        help=f"annotated images each class should appear in (default {DEFAULT_COVERAGE_TARGET})",
    )
    p.add_argument(
        "--coverage-by",
        choices=COVERAGE_BY,
        default=DEFAULT_COVERAGE_BY,
        help="count a candidate's classes by the mean probability of each class's 4 "
        "likeliest pixels (peak), by the ensemble's expected pixels (mass) or by its labels;"
        f" the probabilities find small classes the labels miss (default {DEFAULT_COVERAGE_BY})",
    )
    p.add_argument(
        "--weights",
        type=finite_float,
        nargs=4,
        metavar=("U", "C", "D", "N"),
        default=(1.0, 1.0, 0.5, 1.0),
        help="weights of uncertainty, coverage, diversity and novelty (default 1 1 0.5 1; "
        "novelty needs --annotations)",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the pool")
    p.add_argument(
        "--truncation",
        type=truncation_psi,
        default=None,
        help="truncation psi (default: --annotations's, else the interpreter's or preset's)",
    )
    p.add_argument(
        "--id-prefix",
        type=id_prefix_type,
        default=None,
        help="prefix of the new ids (default: s, or s2, s3... when --annotations holds them)",
    )
    p.add_argument("--device", type=device_name, default=None)

    p = add(
        "merge-annotations",
        cmd_merge_annotations,
        "Join annotation folders into one (same generator, classes and settings; distinct ids).",
        "example:\n  dgan-data merge-annotations ann/ next/ --out all/",
    )
    p.add_argument("folders", type=given_path, nargs="+", help="annotation folders to join")
    p.add_argument(
        "--out", type=annotation_output_folder, required=True, help="the joined folder to write"
    )
    skip_unannotated_arg(p, "join")


def cmd_suggest(args: argparse.Namespace) -> int:
    if args.pool < args.num:
        raise UsageError(f"--pool {args.pool} is smaller than --num {args.num}")
    if any(w < 0 for w in args.weights) or not any(args.weights):
        raise UsageError(
            f"--weights must be >= 0 and one of them > 0, got {' '.join(map(str, args.weights))}"
        )
    if not args.annotations and not any(args.weights[:3]):
        raise UsageError("--weights: only novelty is > 0, and novelty needs --annotations")
    check_new_folder(args.out, "suggest")
    existing = (
        Annotations.load(args.annotations, skip_unannotated=args.skip_unannotated)
        if args.annotations
        else None
    )
    # with --skip-unannotated, the samples not drawn yet are still the folder's: their
    # ids and seeds are taken (new picks with them would not merge once they are drawn)
    listed = listed_samples(Path(args.annotations)) if existing is not None else []
    taken_ids = {str(entry["id"]) for entry in listed}
    drawn = set(existing.ids or ()) if existing is not None else set()
    undrawn_seeds = [
        entry["seed"]
        for entry in listed
        if str(entry["id"]) not in drawn and isinstance(entry.get("seed"), int)
    ]
    if existing is not None and args.id_prefix is not None:
        _check_id_prefix(args.id_prefix, args.num, existing, taken_ids)
    options: dict[str, Any] = {}
    if args.truncation is not None:
        options["truncation_psi"] = args.truncation
    elif existing is not None:  # the picks must merge with them: their truncation
        options["truncation_psi"] = existing.truncation_psi
        options["truncation_cutoff"] = existing.truncation_cutoff
    labeler = Labeler.from_sources(
        generator=args.generator, interpreter=args.interpreter, device=args.device, **options
    )
    try:
        suggestion_crop(labeler)
    except ValueError as err:
        raise UsageError(str(err)) from err
    conflicts = suggestion_conflicts(labeler, existing) if existing is not None else []
    if conflicts:
        raise UsageError(
            f"the suggestions could not merge with --annotations: {'; '.join(conflicts)}"
        )
    id_prefix = args.id_prefix or free_id_prefix(taken_ids, args.num)
    report = suggest_annotations(
        labeler,
        args.num,
        pool=args.pool,
        seed=args.seed,
        existing=existing,
        coverage_target=args.coverage,
        weights=tuple(args.weights),
        coverage_by=args.coverage_by,
        exclude_seeds=undrawn_seeds,
    )
    folder = write_suggestions(labeler, report, args.out, id_prefix=id_prefix)
    n = len(report.suggestions)
    first = shlex.quote(str(args.annotations)) if args.annotations else "FIRST"
    for sample_id, s in zip(folder.ids, report.suggestions):
        print(f"  {sample_id}  seed {s.seed}: {s.reason}")
    print(
        f"wrote {n} image{'s' if n != 1 else ''} to annotate in {folder.root} (reasons in "
        f"suggestions.json, preview in suggestions.png); draw their masks, then: "
        f"dgan-data merge-annotations {first} {shlex.quote(str(folder.root))} --out ALL"
        + (" --skip-unannotated" if args.skip_unannotated else "")
    )
    return 0


def _check_id_prefix(prefix: str, num: int, existing: Annotations, taken: set[str]) -> None:
    """Refuse an ``--id-prefix`` whose ids the ``--annotations`` folder already lists
    (the drawn masks would not merge), suggesting a free prefix."""
    clash = [f"{prefix}{i:05d}" for i in range(num) if f"{prefix}{i:05d}" in taken]
    if clash:
        raise UsageError(
            f"--id-prefix {prefix}: ids {short_list(clash)} are already in --annotations "
            f"{existing.root}, so the suggestions would not merge with it; try --id-prefix "
            f"{free_id_prefix(taken, num, prefix)}"
        )


#: Suffix of the hidden folder beside ``merge-annotations --out`` that the merge is
#: written into before it takes the name of --out (``.all.merge-tmp`` for ``all``).
MERGE_STAGING_SUFFIX = ".merge-tmp"


def _save_staged(merged: Annotations, out: Path) -> None:
    """Save ``merged`` into a hidden folder beside ``out`` (the empty folder the merge
    holds locked) and move its files into ``out`` when whole, the manifest last: an
    interrupted merge leaves no half-written ``out`` (which the rerun refused as a
    folder of the user's), only that staging folder, which the rerun replaces. ``out``
    keeps its own folder (a shell may stand in it)."""
    out = Path(os.path.abspath(out))  # `--out .` names the folder, not "."
    staging = out.parent / f".{out.name}{MERGE_STAGING_SUFFIX}"
    _remove_stale_staging(staging)
    try:
        merged.save(staging)
    except BaseException:  # Ctrl-C or a write error: no leftover for the rerun to meet
        shutil.rmtree(staging, ignore_errors=True)
        raise
    manifest = staging / MANIFEST
    for entry in sorted(staging.iterdir(), key=lambda p: p == manifest):
        os.replace(entry, out / entry.name)
    staging.rmdir()


def _remove_stale_staging(staging: Path) -> None:
    """Remove the staging folder an interrupted (killed) merge into the same --out left;
    one holding anything an annotation folder does not is refused, not deleted."""
    if not os.path.lexists(staging):
        return
    own = {*SUBDIRS, MANIFEST, TRUNCATION_CENTER_FILE}
    if (
        staging.is_symlink()
        or not staging.is_dir()
        or any(
            p.name not in own and not (p.name.startswith(".") and p.name.endswith(".tmp"))
            for p in staging.iterdir()
        )
    ):
        raise UsageError(
            f"{staging}: is in the way of the merge's staging folder and is not one an "
            "interrupted merge left; move it away"
        )
    shutil.rmtree(staging)


def cmd_merge_annotations(args: argparse.Namespace) -> int:
    seen: dict[Path, Path] = {}
    for folder in args.folders:
        first = seen.setdefault(folder.resolve(), folder)
        if first is not folder:
            also = "" if str(first) == str(folder) else f" (as {first} too)"
            raise UsageError(f"{folder}: given twice{also}; give each folder once")
    with folder_lock(args.out, "merge output"):  # a second merge would mix its files in
        check_new_folder(args.out, "merge")
        parts = [
            Annotations.load(folder, skip_unannotated=args.skip_unannotated)
            for folder in args.folders
        ]
        merged = Annotations.merge(*parts)
        _save_staged(merged, args.out)
    samples = f"{len(merged)} annotated sample{'s' if len(merged) != 1 else ''}"
    folders = f"{len(parts)} folder{'s' if len(parts) != 1 else ''}"
    print(f"wrote {samples} from {folders} to {args.out}")
    return 0
