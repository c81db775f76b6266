"""Subcommands of ``dgan-data`` beyond ``inspect``: presets, sample, fit, preview, export, demo."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

Add = Callable[..., argparse.ArgumentParser]


# ------------------------------------------------------------------ presets
def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import cache_dir, presets_table

    rows = presets_table()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    header = ("name", "K", "labels", "arch", "generator", "interpreter")
    table = [header]
    for r in rows:
        res = r.get("label_resolution")
        table.append((
            str(r["name"]),
            str(r["num_classes"]),
            f"{res[0]}x{res[1]}" if res else "?",
            str(r["architecture"]),
            "yes" if r["generator_present"] else "-",
            "yes" if r["interpreter_present"] else "-",
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"\ncache: {cache_dir()}  (set DGAN_DATA_HOME to move it)")
    return 0


# ------------------------------------------------------------------- sample
def cmd_sample(args: argparse.Namespace) -> int:
    from .annotations import sample_annotation_folder
    from .generators import load_generator

    G = load_generator(args.generator, device=args.device)
    class_names = args.classes.split(",") if args.classes else None
    out = sample_annotation_folder(
        G,
        args.num,
        args.out,
        seed=args.seed,
        truncation_psi=args.truncation,
        class_names=class_names,
    )
    print(
        f"wrote {len(out.written)} new, kept {len(out.skipped)} existing samples in {out.root}; "
        f"draw masks as single-channel PNG class ids (255 = ignore) in {out.root / 'masks'}"
    )
    return 0


# ---------------------------------------------------------------------- fit
def cmd_fit(args: argparse.Namespace) -> int:
    from .annotations import Annotations
    from .generators import load_generator
    from .interpreter import Interpreter

    G = load_generator(args.generator, device=args.device)
    ann = Annotations.load(args.annotations)
    if not args.skip_validation:
        ann.validate(G)
    interp = Interpreter.fit(
        G,
        ann,
        num_models=args.num_models,
        seed=args.seed,
        max_steps=args.max_steps,
    )
    path = interp.save(args.out)
    print(f"wrote {path}")
    return 0


# ------------------------------------------------------------ registration
def register(add: Add) -> None:
    """Add this module's subcommands through the parser factory ``add``."""
    p = add(
        "presets",
        cmd_presets,
        "List the named presets: classes, label resolution, and whether their files are here.",
        "examples:\n  dgan-data presets\n  dgan-data presets --json",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add(
        "sample",
        cmd_sample,
        "Write generated images to annotate, with the latents that regenerate them exactly.",
        "examples:\n  dgan-data sample --generator toyface-14 --num 20 --out ann/\n"
        "  dgan-data sample --generator ffhq.pkl --num 16 --out ann/ --seed 100 --truncation 0.7",
    )
    p.add_argument("--generator", required=True, help="checkpoint path or preset name")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--out", type=Path, required=True, help="annotation folder to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the first sample (then +1, ...)")
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi")
    p.add_argument("--classes", help="comma-separated class names to store in the manifest")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ...")

    p = add(
        "fit",
        cmd_fit,
        "Train an interpreter (ensemble of pixel MLPs) on an annotation folder.",
        "examples:\n"
        "  dgan-data fit --generator toyface-14 --annotations ann/ --out interp.safetensors\n"
        "  dgan-data fit --generator g.pkl --annotations ann/ --out i.safetensors --num-models 5",
    )
    p.add_argument("--generator", required=True, help="checkpoint path or preset name")
    p.add_argument("--annotations", type=Path, required=True, help="annotation folder")
    p.add_argument("--out", type=Path, required=True, help="interpreter .safetensors to write")
    p.add_argument("--num-models", type=int, default=10, help="ensemble size (default 10)")
    p.add_argument("--max-steps", type=int, default=None, help="cap on steps per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--skip-validation", action="store_true", help="do not regenerate and compare images first"
    )
