"""Subcommands about models: inspect, presets, sample, fit."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ..annotations import Annotations, sample_annotation_folder
from ..annotations.format import MANIFEST, MAX_SAMPLES
from ..annotations.tool_readers import IGNORE_COLOUR
from ..annotations.tools import manifest_palette
from ..conventions import IGNORE_INDEX
from ..fileio import read_json
from ..generators import LOADER_OPTIONS as GENERATOR_LOADER_OPTIONS
from ..holdout import holdout_scores
from ..interpreter import Interpreter
from ..interpreter.context import MAX_CONTEXT
from ..interpreter.io import MAX_MODELS
from ..presets import (
    Preset,
    cache_dir,
    get_preset,
    list_presets,
    load_generator,
    preset_status,
    presets_table,
    resolve_source,
)
from .common import (
    Add,
    UsageError,
    annotation_output_folder,
    check_new_folder,
    count_at_most,
    device_name,
    given_path,
    id_prefix_type,
    int_range,
    interpreter_output,
    no_progress_arg,
    non_negative_int,
    parse_options,
    positive_int,
    preset_or_files_args,
    seed_int,
    skip_unannotated_arg,
    truncation_psi,
)
from .summaries import (
    annotation_summary,
    export_summary,
    fit_summary,
    holdout_report,
    inspect_kind,
    interpreter_summary,
    listed_samples,
    print_annotation_summary,
    print_record,
    unwritten_samples,
)

log = logging.getLogger(__name__)


def context_radius(text: str) -> int:
    """argparse type: a neighbourhood radius in [0, MAX_CONTEXT]."""
    value = non_negative_int(text)
    if value > MAX_CONTEXT:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {MAX_CONTEXT}")
    return value


#: Keyword options the generator loaders accept (``--option KEY=VALUE``): the library's
#: own list, so the two never drift apart. Which apply, and their value types, is checked
#: by the loader for the file's format (CheckpointError naming the option: exit code 2).
LOADER_OPTIONS: tuple[str, ...] = GENERATOR_LOADER_OPTIONS


def cmd_inspect(args: argparse.Namespace) -> int:
    target = Path(args.path)
    # an empty name is Path("."), the current folder: the loader refuses it by name
    kind = inspect_kind(target) if args.path else "generator"
    if kind != "generator" and args.option:
        what = {"annotations": "an annotation folder", "export": "an export folder"}
        raise UsageError(f"--option is for generator checkpoints; {target} is "
                         f"{what.get(kind, 'an interpreter file')}")  # fmt: skip
    if kind == "annotations":
        info = annotation_summary(target)
        if not args.json:
            print_annotation_summary(info)
    elif kind == "interpreter":
        info = interpreter_summary(target)
    elif kind == "export":
        info = export_summary(target)
    else:
        # a folder named like a preset does not hide it (as everywhere a preset is read)
        if args.path and target.is_dir() and args.path not in list_presets():
            raise UsageError(
                f"{target} is a folder without {MANIFEST} or dataset.json: inspect reads a "
                "generator checkpoint (or preset name), an interpreter file, an annotation "
                "folder or an export folder"
            )
        G = load_generator(args.path, **parse_options(args.option, LOADER_OPTIONS))
        path, preset = resolve_source(args.path, "generator")  # the file load_generator read
        info = {
            "file": str(path),
            "preset": preset,  # null for a file named by its path: the same keys either way
            **G.describe(),
            "fingerprint": G.fingerprint(),
        }
    if args.json:
        print(json.dumps(info, indent=2))
    elif kind != "annotations":
        print_record(info)
    if kind == "export" and info["problem"] is not None:
        print(f"warning: {info['problem']}", file=sys.stderr)
        return 1
    return 0


def preset_record(name: str) -> dict[str, Any]:
    """Everything about one preset for ``dgan-data presets --json``: its fields (the
    palette resolved), and which files are present where."""
    preset = get_preset(name)
    status = preset_status(name)
    record = preset.to_dict()
    record["palette"] = preset.palette_array.tolist()
    for kind in ("generator", "interpreter"):
        found = status[kind]
        record[f"{kind}_present"] = found is not None
        record[f"{kind}_path"] = None if found is None else str(found)
        record[f"expected_{kind}"] = [str(p) for p in status[f"expected_{kind}"]]
        record[f"unusable_{kind}"] = [str(p) for p in status[f"unusable_{kind}"]]
    return record


def print_preset(record: dict[str, Any]) -> None:
    """One preset in full: classes with ids and colours, resolutions, truncation, files."""
    label, image = record["label_resolution"], record["image_resolution"]
    image_text = f", images {image[0]}x{image[1]}" if image else ""
    print(
        f"{record['name']}: {record['architecture']}, {record['num_classes']} classes, "
        f"labels {label[0]}x{label[1]}{image_text}, truncation psi {record['truncation_psi']}"
        + (f" (cutoff {record['truncation_cutoff']})" if record["truncation_cutoff"] else "")
    )
    print("classes (id, name, colour):")
    for i, (cls, colour) in enumerate(zip(record["class_names"], record["palette"])):
        print(f"  {i:>3}  {cls:<24} {tuple(colour)}")
    if record.get("class_names_source"):
        print(f"class names: {record['class_names_source']}")
    for kind in ("generator", "interpreter"):
        unusable = ", ".join(record[f"unusable_{kind}"])
        bad = f"{unusable} (a dangling or looping symbolic link, or a folder)"
        if record[f"{kind}_present"]:
            print(f"{kind}: {record[f'{kind}_path']}" + (f"; unusable: {bad}" if unusable else ""))
        elif unusable:
            print(f"{kind}: unusable: {bad}; replace it with the file")
        else:
            print(f"{kind}: missing")
        print(f"  names accepted: {', '.join(record[f'{kind}_files'])}")
        print(f"  tried in this order: {', '.join(record[f'expected_{kind}'])}")
    if record.get("avg_latent_files"):
        print(
            f"average latent (StyleGAN1 .pt): {', '.join(record['avg_latent_files'])}, "
            "beside the generator, then in the folders above"
        )
    for key in ("source", "notes"):
        if record.get(key):
            print(f"{key}: {record[key]}")


def cmd_presets(args: argparse.Namespace) -> int:
    if args.name is not None:
        record = preset_record(args.name)
        if args.json:
            print(json.dumps(record, indent=2))
        else:
            print_preset(record)
        return 0
    if args.json:
        print(json.dumps([preset_record(name) for name in list_presets()], indent=2))
        return 0
    rows = presets_table()
    header = ("name", "K", "labels", "arch", "generator", "interpreter")
    table = [header]
    for r in rows:
        res = r.get("label_resolution")
        table.append(
            (
                str(r["name"]),
                str(r["num_classes"]),
                f"{res[0]}x{res[1]}" if res else "?",
                str(r["architecture"]),
                "yes" if r["generator_present"] else "-",
                "yes" if r["interpreter_present"] else "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"\ncache: {cache_dir()}  (set DGAN_DATA_HOME to move it)")
    print("dgan-data presets NAME shows one preset in full: classes, palette, truncation, files")
    return 0


def parse_class_names(text: str | None) -> list[str] | None:
    """``--classes a,b,c`` as a list; empty or duplicate names are refused."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise UsageError(f"--classes {text!r}: empty class name (use 'a,b,c')")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"--classes: duplicate class names {dup}")
    return names


def sample_preset(generator: str) -> Preset | None:
    """The preset ``--generator`` names, or None for a checkpoint file: resolved as
    ``load_generator`` resolves it (an existing file wins, even one named like a preset)."""
    _, name = resolve_source(generator, "generator")
    return None if name is None else get_preset(name)


def sample_class_names(args: argparse.Namespace, preset: Preset | None) -> list[str]:
    """``--classes``, else the preset's classes when ``--generator`` names a preset: the
    masks drawn in the folder are class ids, and ``fit`` and ``import-masks`` need names."""
    names = parse_class_names(args.classes)
    if names is None and preset is not None:
        names = list(preset.class_names or []) or None
    if names is None:
        raise UsageError(
            "--classes is needed: the masks drawn in the folder are class ids that fit and "
            "import-masks read by name (e.g. --classes background,car,wheel; a preset "
            "generator gives its own)"
        )
    return names


def sample_truncation(args: argparse.Namespace, preset: Preset | None) -> tuple[float, int | None]:
    """(psi, cutoff) as ``Labeler.from_sources`` resolves them, so that the folder merges
    with the preset's annotations and stream: a preset named by ``--generator`` gives its
    cutoff and, without ``--truncation``, its psi; a checkpoint file samples at 1.0."""
    psi, cutoff = args.truncation, None
    if preset is not None:
        psi = preset.truncation_psi if psi is None else psi
        cutoff = preset.truncation_cutoff
    return (1.0 if psi is None else psi), cutoff


def cmd_sample(args: argparse.Namespace) -> int:
    # resumes its own annotation folder (manifest.json); never adds samples to a folder
    # of yours, which inspect would then read as an annotation folder
    check_new_folder(args.out, "sample", resumes=MANIFEST)
    preset = sample_preset(args.generator)
    class_names = sample_class_names(args, preset)
    psi, cutoff = sample_truncation(args, preset)
    # the preset's palette goes with its class names; its crop is the label frame its
    # interpreter and annotations use (in image pixels)
    own_names = preset is not None and class_names == list(preset.class_names or [])
    G = load_generator(args.generator, device=args.device)
    if args.id_prefix and args.seed is None:
        # a second folder is what --id-prefix is for: with the default seed it holds the
        # first folder's images again, which merge-annotations refuses once drawn
        print(
            "note: --id-prefix without --seed samples from seed 0, the images of every "
            "folder sampled without --seed; for a second folder to merge with a first of "
            "N samples, give --seed N (or higher)",
            file=sys.stderr,
        )
    try:
        out = sample_annotation_folder(
            G,
            args.num,
            args.out,
            seed=0 if args.seed is None else args.seed,
            truncation_psi=psi,
            truncation_cutoff=cutoff,
            class_names=class_names,
            palette=preset.palette if own_names else None,
            crop=preset.crop if preset is not None else None,
            id_prefix=args.id_prefix or "",
            # masks at the preset's label size (face-34: 512 px masks of 1024 px images)
            mask_resolution=preset.label_resolution if preset is not None else None,
        )
    except KeyboardInterrupt:
        _report_interrupted_sample(args.out)
        raise  # main says "interrupted" and exits 130
    masks = out.root / "masks"
    print(
        f"wrote {len(out.written)} new, kept {len(out.skipped)} existing samples in {out.root}; "
        f"draw masks as single-channel PNG class ids (255 = ignore) in {masks}"
    )
    if class_names:
        print(
            "or paint them in colour, one colour per class as listed, and convert them "
            f"with: dgan-data import-masks --format palette {shlex.quote(str(masks))} "
            f"--annotations {shlex.quote(str(out.root))}"
        )
        palette = _folder_palette(out.root)
        for k, (name, colour) in enumerate(zip(class_names, palette)):
            print(f"  {k:>3}  {name:<24} {colour}")
        if IGNORE_COLOUR not in palette:
            print(f"  {IGNORE_INDEX:>3}  {'(ignore)':<24} {IGNORE_COLOUR}")
    return 0


def _report_interrupted_sample(root: Path) -> None:
    """After Ctrl-C: how many samples of the manifest (written before the images) are on
    disk, and that the same command finishes the folder (it keeps those)."""
    try:
        entries = listed_samples(root)
    except (OSError, ValueError, KeyError, TypeError):  # stopped before the manifest
        return
    done = len(entries) - unwritten_samples(root, entries)
    print(
        f"{done} of {len(entries)} samples written to {root}; run the same command again "
        "to finish the folder (it keeps the samples written)",
        file=sys.stderr,
    )


def _folder_palette(root: Path) -> list[tuple[int, int, int]]:
    """The colours of an annotation folder's classes, as the palette import reads them
    (its manifest's palette, else the default one)."""
    manifest = read_json(root / MANIFEST)  # the folder sample_annotation_folder just wrote
    return manifest_palette(manifest, len(manifest["class_names"])) or []


def check_fit_frame(ann: Annotations, preset: Preset | None, folder: Path, out: Path) -> None:
    """``fit --generator PRESET``: compare the annotations' label frame (mask size and
    crop) and classes with the preset's before training. An interpreter written where
    the preset looks for its own must match both (the preset would refuse it at every
    use); elsewhere a frame of its own is allowed (pass it with ``--interpreter``) and
    logged as a warning. A generator file fits any frame."""
    if preset is None:
        return
    crop = tuple(ann.crop) if ann.crop is not None else None
    hw = tuple(ann.mask_resolution)
    problems = []
    if crop != preset.crop or hw != preset.label_resolution:
        problems.append(
            f"masks {_frame_text(hw, crop)} where preset {preset.name!r} labels "
            f"{_frame_text(preset.label_resolution, preset.crop)}"
        )
    expected = preset.expected_paths("interpreter")  # in search order
    searched = [p.resolve() for p in expected]
    target = out.resolve()
    if target not in searched:
        if problems:
            log.warning(
                "%s: %s: the interpreter fits this folder, not the preset (use it with "
                "--interpreter, not in the preset's folder)",
                folder,
                problems[0],
            )
        return
    if list(ann.class_names) != list(preset.class_names):
        problems.append(_class_difference(list(ann.class_names), list(preset.class_names)))
    if problems:
        raise UsageError(
            f"{folder}: {'; '.join(problems)}: {out} is where the preset looks for its own "
            "interpreter, which must fit its frame and classes (write it elsewhere and pass "
            "it with --interpreter, or sample the folder with --generator "
            f"{preset.name})"
        )
    # a file the preset finds before this one: fit wrote there a file never loaded
    shadow = next((p for p in expected[: searched.index(target)] if p.is_file()), None)
    if shadow is not None:
        raise UsageError(
            f"--out {out}: {shadow} is found first when preset {preset.name!r} loads its "
            "interpreter, so it would never load this one (remove or replace that file, "
            "or write elsewhere and pass it with --interpreter)"
        )


def _class_difference(names: list[str], preset_names: list[str]) -> str:
    """The first class where a folder's names differ from the preset's, by id and name
    (the first four names of each list hid a difference further on)."""
    for k, (mine, theirs) in enumerate(zip(names, preset_names)):
        if mine != theirs:
            return f"class {k} is {mine!r} where the preset has {theirs!r}"
    return f"{len(names)} classes where the preset has {len(preset_names)}"


def _frame_text(size: tuple[int, ...], crop: tuple[int, ...] | None) -> str:
    """``384x512 (crop (64, 0, 384, 512))`` or ``64x64 (no crop)``."""
    return f"{size[0]}x{size[1]} " + (f"(crop {crop})" if crop is not None else "(no crop)")


def cmd_fit(args: argparse.Namespace) -> int:
    source, _ = resolve_source(args.generator, "generator")  # a preset's file too
    if source.is_file() and source.resolve() == Path(args.out).resolve():
        raise UsageError(
            f"--out {args.out} is the generator being read: the interpreter would replace "
            "it; write the interpreter to another file"
        )
    if os.path.lexists(args.out) and not args.overwrite:  # before hours of training; a link too
        raise UsageError(
            f"--out {args.out} exists; give --overwrite to replace it, or another file name"
        )
    preset = sample_preset(args.generator)
    G = load_generator(args.generator, device=args.device)
    ann = Annotations.load(args.annotations, skip_unannotated=args.skip_unannotated)
    check_fit_frame(ann, preset, args.annotations, args.out)
    if not args.skip_validation:
        ann.validate(G)
    options = {"with_image": args.with_image, "context": args.context}
    if args.max_steps is not None:
        options["max_steps"] = args.max_steps
    if args.holdout_rounds is not None and args.holdout is None:
        raise UsageError("--holdout-rounds needs --holdout K (the images held out per round)")
    if args.holdout is not None:
        if args.holdout >= len(ann):
            raise UsageError(
                f"--holdout {args.holdout}: {args.annotations} has {len(ann)} annotated "
                "images; hold out fewer, so that some are left to fit on"
            )
        rounds = args.holdout_rounds or 1
        if rounds * args.holdout > len(ann):
            raise UsageError(
                f"--holdout {args.holdout} --holdout-rounds {rounds} needs "
                f"{rounds * args.holdout} annotated images, {args.annotations} has "
                f"{len(ann)}: at most {len(ann) // args.holdout} disjoint rounds"
            )
        scores = holdout_scores(
            G, ann, args.holdout, rounds=rounds, seed=args.seed, num_models=args.num_models,
            progress=not args.no_progress, **options,
        )  # fmt: skip
        print(holdout_report(scores))
        print(f"now fitting on all {len(ann)} images")
    interp = Interpreter.fit(
        G, ann, num_models=args.num_models, seed=args.seed, progress=not args.no_progress, **options
    )
    path = interp.save(args.out)
    print(f"wrote {path}: {fit_summary(interp.training_info, args.max_steps)}")
    return 0


def register(add: Add) -> None:
    """Add this module's subcommands through the parser factory ``add``."""
    p = add(
        "inspect",
        cmd_inspect,
        "Summarise a generator checkpoint (architecture, resolution, feature channels), an "
        "interpreter file (classes, models, training), an annotation folder (masks drawn, "
        "each class's pixels and images) or an export folder (status, settings, selection).",
        "examples:\n  dgan-data inspect stylegan2-ffhq.pkl\n"
        "  dgan-data inspect face.for_g_all.pt --option avg_latent=avg_latent_stylegan1.npy\n"
        "  dgan-data inspect generator.safetensors --json\n"
        "  dgan-data inspect interpreter.safetensors\n"
        "  dgan-data inspect ann/\n"
        "  dgan-data inspect data/",
    )
    p.add_argument(
        "path",
        help="checkpoint (.pt, .pkl, .safetensors) or preset name, interpreter "
        ".safetensors, annotation folder or export folder",
    )
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help=f"loader option, one of: {', '.join(LOADER_OPTIONS)}",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add(
        "presets",
        cmd_presets,
        "List the named presets, or show one in full: classes, palette, resolutions, "
        "truncation, and whether its files are here.",
        "examples:\n  dgan-data presets\n  dgan-data presets toyface-14\n"
        "  dgan-data presets car-20 --json",
    )
    p.add_argument("name", nargs="?", default=None, help="one preset to show in full")
    p.add_argument("--json", action="store_true", help="print JSON (every field of each preset)")

    p = add(
        "sample",
        cmd_sample,
        "Write generated images to annotate, with the latents that regenerate them exactly.",
        "examples:\n  dgan-data sample toyface-14 --num 20 --out ann/\n"
        "  dgan-data sample --generator ffhq.pkl --num 16 --out ann/ --seed 100 --truncation 0.7 "
        "--classes background,skin,hair",
    )
    preset_or_files_args(p, ("generator",))
    p.add_argument("--generator", default=None, help="checkpoint path or preset name")
    p.add_argument(
        "--num",
        type=count_at_most(MAX_SAMPLES),
        required=True,
        help=f"number of samples, at most {MAX_SAMPLES:,}",
    )
    p.add_argument(
        "--out", type=annotation_output_folder, required=True, help="annotation folder to write"
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        default=None,
        help="seed of the first sample (then +1, ...; default 0)",
    )
    p.add_argument(
        "--truncation",
        type=truncation_psi,
        default=None,
        help="truncation psi (default: the preset's when PRESET or --generator names one, "
        "else 1.0)",
    )
    p.add_argument(
        "--classes",
        help="comma-separated class names to store in the manifest (default: the preset's, "
        "when PRESET or --generator names one)",
    )
    p.add_argument(
        "--id-prefix",
        type=id_prefix_type,
        default=None,
        help="prefix of the sample ids (ids are PREFIX00000, ...): a second folder to merge "
        "with a first needs another prefix, and other seeds (--seed)",
    )
    p.add_argument("--device", type=device_name, default=None, help="cpu, cuda, cuda:1, ...")

    p = add(
        "fit",
        cmd_fit,
        "Train an interpreter (ensemble of pixel MLPs) on an annotation folder.",
        "examples:\n"
        "  dgan-data fit toyface-14 --annotations ann/ --out interp.safetensors\n"
        "  dgan-data fit --generator g.pkl --annotations ann/ --out i.safetensors --num-models 5",
    )
    preset_or_files_args(p, ("generator",))
    p.add_argument("--generator", default=None, help="checkpoint path or preset name")
    p.add_argument("--annotations", type=given_path, required=True, help="annotation folder")
    p.add_argument(
        "--out",
        type=interpreter_output,
        required=True,
        help="interpreter to write (a file name ending in .safetensors)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace --out where it exists (else refused)"
    )
    p.add_argument(
        "--num-models",
        type=int_range(1, MAX_MODELS),
        default=10,
        help=f"ensemble size, 1-{MAX_MODELS} (default 10)",
    )
    p.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help="cap on steps per model (default 20,000; models stop earlier on a plateau)",
    )
    p.add_argument(
        "--with-image",
        action="store_true",
        help="the generated image is an input too (its colour at each pixel)",
    )
    p.add_argument(
        "--context",
        type=context_radius,
        default=0,
        help=f"neighbourhood radius on the finest maps, 0-{MAX_CONTEXT} (default 0: one pixel)",
    )
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", type=device_name, default=None)
    p.add_argument(
        "--skip-validation", action="store_true", help="do not regenerate and compare images first"
    )
    p.add_argument(
        "--holdout",
        type=positive_int,
        default=None,
        metavar="K",
        help="first fit on all but K annotated images (drawn with --seed) and print how "
        "well their masks are predicted, per class; then fit on all",
    )
    p.add_argument(
        "--holdout-rounds",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --holdout K: N rounds with disjoint held-out images, counts pooled "
        "(N = images // K holds each image out once); one fit per round",
    )
    skip_unannotated_arg(p, "train on")
    no_progress_arg(p)
