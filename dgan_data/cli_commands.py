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


# ----------------------------------------------------------- preview, export
def _model_source(args: argparse.Namespace) -> dict[str, object]:
    """Preset and/or --generator/--interpreter as keyword arguments for the library."""
    if args.preset is None and (args.generator is None or args.interpreter is None):
        raise ValueError("give a PRESET, or both --generator and --interpreter")
    options: dict[str, object] = {}
    if args.truncation is not None:
        options["truncation_psi"] = args.truncation
    return {
        "source": args.preset,
        "generator": args.generator,
        "interpreter": args.interpreter,
        "device": args.device,
        **options,
    }


def cmd_preview(args: argparse.Namespace) -> int:
    from .viz import preview

    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    kw = _model_source(args)
    path = preview(kw.pop("source"), args.num, args.out, args.seed, **kw)
    print(f"wrote {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_dataset, merge_shards

    if args.merge:
        summary = merge_shards(args.out)
    else:
        if args.num is None:
            raise ValueError("--num is required (except with --merge)")
        if (args.shard is None) != (args.num_shards is None):
            raise ValueError("give both --shard and --num-shards, or neither")
        kw = _model_source(args)
        summary = export_dataset(
            kw.pop("source"),
            args.num,
            args.out,
            drop_uncertain=args.drop_uncertain,
            shard=args.shard,
            num_shards=args.num_shards,
            seed=args.seed,
            batch_size=args.batch_size,
            **kw,
        )
    if summary.complete:
        print(
            f"{summary.root}: {summary.kept} samples kept of {summary.num_candidates} "
            f"candidates ({summary.dropped} most uncertain dropped)"
        )
    else:
        print(
            f"{summary.root}: shard {summary.shard} of {summary.num_shards} done "
            f"({summary.generated} generated, {summary.resumed} resumed); the selection "
            "runs when the last shard finishes (or: dgan-data export --merge --out DIR)"
        )
    return 0


# --------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo

    options = {
        "out": args.out,
        "preset": args.preset,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "progress": not args.no_progress,
    }
    for name in ("steps", "batch_size", "lr", "test_count", "stream_workers"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    config = DemoConfig.quick_config(**options) if args.quick else DemoConfig(**options)
    run_demo(config)
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

    p = add(
        "preview",
        cmd_preview,
        "Write a PNG grid of generated samples: image, mask overlay, pixel uncertainty.",
        "examples:\n  dgan-data preview toyface-14 --num 16 --out grid.png\n"
        "  dgan-data preview --generator g.pkl --interpreter i.safetensors --seed 3 "
        "--out grid.png",
    )
    _model_args(p)
    p.add_argument("--num", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--out", type=Path, default=Path("grid.png"), help="PNG to write")
    p.add_argument("--seed", type=int, default=0, help="base seed (as in export)")

    p = add(
        "export",
        cmd_export,
        "Write a finite labeled dataset to disk: the most uncertain samples dropped "
        "globally; rerun the same command to resume.",
        "examples:\n  dgan-data export toyface-14 --num 10000 --out data/\n"
        "  dgan-data export --generator g.pkl --interpreter i.safetensors --num 500 "
        "--out data/ --drop-uncertain 0.2\n"
        "  dgan-data export car-20 --num 10000 --out data/ --shard 0 --num-shards 4   "
        "# one per machine\n"
        "  torchrun --nproc-per-node 4 -m dgan_data.cli export car-20 --num 10000 --out data/\n"
        "  dgan-data export --merge --out data/   # select after all shards finished",
    )
    _model_args(p)
    p.add_argument("--num", type=int, default=None, help="number of candidates to generate")
    p.add_argument("--out", type=Path, required=True, help="export folder")
    p.add_argument(
        "--drop-uncertain",
        type=float,
        default=0.1,
        help="fraction of candidates dropped, most uncertain first (default 0.1)",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument(
        "--batch-size", type=int, default=8, help="candidates per generator call (default 8)"
    )
    p.add_argument("--shard", type=int, default=None, help="this shard (default: RANK)")
    p.add_argument(
        "--num-shards", type=int, default=None, help="number of shards (default: WORLD_SIZE)"
    )
    p.add_argument(
        "--merge", action="store_true", help="only run the selection of a sharded export"
    )

    p = add(
        "demo",
        cmd_demo,
        "Train the same DeepLab on (a) the DatasetGAN stream, (b) 16 real labeled images, "
        "(c) 5,000 real labeled images; score all three on real toy test renders.",
        "Offline, on the CPU in about 12 minutes on 2 cores (defaults). Writes "
        "results.json and figure.png to --out.\n\nexamples:\n  dgan-data demo\n"
        "  dgan-data demo --out demo/ --threads 2\n"
        "  dgan-data demo --quick --out /tmp/demo   # a few steps: checks the setup",
    )
    p.add_argument("--out", type=Path, default=Path("dgan-demo"), help="output folder")
    p.add_argument("--preset", default="toyface-14", help="toy preset (default toyface-14)")
    p.add_argument("--steps", type=int, default=None, help="steps per arm (default 400)")
    p.add_argument("--batch-size", type=int, default=None, help="images per step (default 8)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 3e-3)")
    p.add_argument("--test-count", type=int, default=None, help="test renders (default 500)")
    p.add_argument("--quick", action="store_true", help="3 steps per arm, 10 test images")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if any)")
    p.add_argument("--seed", type=int, default=0, help="seed of model init, stream, batches")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    p.add_argument(
        "--stream-workers",
        type=int,
        default=None,
        help="CPU processes generating the stream in arm (a) (default on CPU: 2, or half "
        "the threads; 0 generates in the training process)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _model_args(p: argparse.ArgumentParser) -> None:
    """PRESET and the flags that override its files, shared by preview and export."""
    p.add_argument("preset", nargs="?", default=None, help="preset name (optional with files)")
    p.add_argument("--generator", default=None, help="generator checkpoint (overrides PRESET)")
    p.add_argument(
        "--interpreter", default=None, help="interpreter .safetensors (overrides PRESET)"
    )
    p.add_argument("--truncation", type=float, default=None, help="truncation psi")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ...")
