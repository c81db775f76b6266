"""Subcommands that make data: preview, export, demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..conventions import MAX_BATCH
from ..downstream.demo import (
    MAX_BATCH_SIZE,
    MAX_DRAWS,
    MAX_STREAM_POOL,
    MAX_THREADS,
    DemoConfig,
    run_demo,
)
from ..export import (
    MAX_NUM,
    ExportBusyError,
    ExportSummary,
    export_dataset,
    merge_shards,
    verify_export,
)
from ..export.records import MAX_SHARDS
from ..export.select import dropped_phrase
from ..fileio import read_json
from ..labeler import NonFiniteOutputError
from ..presets.resolve import project_folder_kind
from ..preview import (
    DEFAULT_PREVIEW_NUM,
    MAX_PREVIEW_NUM,
    preview,
    preview_annotations,
    preview_export,
)
from ..toy.render import SPLITS, VARIATIONS
from .common import (
    Add,
    UsageError,
    count_at_most,
    device_name,
    export_folder,
    fraction,
    given_path,
    int_range,
    model_args,
    model_source,
    no_progress_arg,
    non_negative_int,
    output_file,
    output_folder,
    positive_float,
    positive_int,
    seed_int,
)

#: Most CPU processes that generate the demo's stream (each holds a generator, ~0.5 GB
#: on the toy world: 100,000 ran the machine out of memory and left workers behind).
MAX_STREAM_WORKERS = 64


def cmd_preview(args: argparse.Namespace) -> int:
    if args.annotations is not None or args.export is not None:
        return _preview_folder(args)
    kw = model_source(args)
    num = DEFAULT_PREVIEW_NUM if args.num is None else args.num
    out = Path("grid.png") if args.out is None else args.out
    path = preview(kw.pop("source"), num, out, args.seed or 0, **kw)
    print(f"wrote {path}")
    return 0


def _preview_folder(args: argparse.Namespace) -> int:
    """``preview --annotations`` or ``--export``: a folder's own images and masks, no
    model."""
    if args.annotations is not None and args.export is not None:
        raise UsageError("give --annotations or --export, not both")
    wanted = "annotations" if args.annotations is not None else "export"
    option, folder = f"--{wanted}", getattr(args, wanted)
    kind = project_folder_kind(folder)  # "annotations", "export" or None
    if kind is not None and kind != wanted:
        described = "an annotation folder" if kind == "annotations" else "an export"
        raise UsageError(f"{folder} is {described}: preview it with --{kind} {folder}")
    given = [
        flag
        for flag, value in (
            ("PRESET", args.preset),
            ("--generator", args.generator if args.export is not None else None),
            ("--interpreter", args.interpreter),
            ("--truncation", args.truncation),
            # only --annotations --generator uses a device: it regenerates the images
            ("--device", args.device if args.generator is None or args.export else None),
            ("--seed", args.seed),
        )
        if value is not None
    ]
    if given:
        raise UsageError(
            f"{option} draws the folder's own images and masks, without a model; "
            f"leave out {', '.join(given)}"
        )
    if args.annotations is not None:
        out = args.out if args.out is not None else Path("annotations.png")
        path, ids = preview_annotations(
            args.annotations, out, args.num, generator=args.generator, device=args.device
        )
        what = "annotated"
    else:
        out = args.out if args.out is not None else Path("export.png")
        path, ids = preview_export(args.export, out, args.num)
        what = "exported"
    print(
        f"wrote {path}: {len(ids)} {what} sample{'s' if len(ids) != 1 else ''} "
        f"({ids[0]} .. {ids[-1]}, left to right), image above its mask"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        if args.verify:
            return _verify(args)
        summary = _export(args)
    except (ExportBusyError, NonFiniteOutputError) as err:
        raise UsageError(str(err)) from err
    if summary.complete:
        repaired = f"; {summary.repaired} damaged files repaired" if summary.repaired else ""
        if summary.rebuilt:
            repaired += f"; {' and '.join(summary.rebuilt)} rebuilt"
        print(
            f"{summary.root}: {summary.kept} samples kept of {summary.num_candidates} "
            f"candidates ({dropped_phrase(summary.dropped or 0, summary.tied)}){repaired}"
        )
    else:
        print(
            f"{summary.root}: shard {summary.shard} of {summary.num_shards} done "
            f"({summary.generated} generated, {summary.resumed} resumed); the selection "
            "runs when the last shard finishes (or: dgan-data export --merge --out DIR)"
        )
    return 0


#: ``export`` options a merge or verify takes from ``dataset.json``: given, they must
#: match the record (a different value would silently not apply).
_RECORDED_OPTIONS = ("num", "drop_uncertain", "seed", "batch_size", "num_shards")
#: ``export`` options that choose the models or the shard: a merge or verify uses the
#: export's own, so they are refused with it.
_MODEL_OPTIONS = ("preset", "generator", "interpreter", "truncation", "device", "shard")


def check_recorded_options(args: argparse.Namespace, mode: str) -> None:
    """Refuse (UsageError) options that ``export --merge`` or ``--verify`` would ignore:
    model and shard options, and recorded settings given with another value than the
    export's ``dataset.json`` holds."""
    given = [n for n in _MODEL_OPTIONS if getattr(args, n, None) is not None]
    if given:
        flags = ", ".join(
            "PRESET (--preset)" if n == "preset" else "--" + n.replace("_", "-") for n in given
        )
        raise UsageError(f"{mode} uses the export's own models and every shard; drop {flags}")
    values = {n: getattr(args, n) for n in _RECORDED_OPTIONS if getattr(args, n) is not None}
    if not values:
        return
    desc_path = Path(args.out) / "dataset.json"
    try:  # a regular file, bounded: a FIFO here hung the command
        settings = read_json(desc_path)["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # merge and verify name the missing or damaged file themselves
    if not isinstance(settings, dict):
        return  # (a string here raised TypeError from the comparison below)
    differ = [
        f"--{n.replace('_', '-')} {v} (recorded: {settings.get(n)})"
        for n, v in values.items()
        if n in settings and settings[n] != v
    ]
    if differ:
        raise UsageError(
            f"{mode} applies the settings recorded in {desc_path}, not {'; '.join(differ)}: "
            "drop them, or export into another --out"
        )


def _export(args: argparse.Namespace) -> ExportSummary:
    if args.merge:
        check_recorded_options(args, "--merge")
        return merge_shards(args.out)
    if args.num is None:
        raise UsageError("--num is required (except with --merge or --verify)")
    if (args.shard is None) != (args.num_shards is None):
        raise UsageError("give both --shard and --num-shards, or neither")
    if args.shard is not None and args.shard >= args.num_shards:
        raise UsageError(
            f"--shard must be in [0, {args.num_shards - 1}] (below --num-shards "
            f"{args.num_shards}), got {args.shard}"
        )
    kw = model_source(args)
    return export_dataset(
        kw.pop("source"),
        args.num,
        args.out,
        drop_uncertain=0.1 if args.drop_uncertain is None else args.drop_uncertain,
        shard=args.shard,
        num_shards=args.num_shards,
        seed=0 if args.seed is None else args.seed,
        batch_size=8 if args.batch_size is None else args.batch_size,
        progress=not args.no_progress,
        **kw,
    )


def _verify(args: argparse.Namespace) -> int:
    """``export --verify``: one line per problem, a summary; exit 0 if intact, else 1."""
    if args.merge:
        raise UsageError("--verify and --merge exclude each other: verify after the merge")
    check_recorded_options(args, "--verify")
    report = verify_export(args.out)
    for problem in report.problems:
        print(problem)
    for note in report.notes:
        print(f"note: {note}")
    if report.ok:
        print(f"{report.root}: {report.files_checked} files verified, no problems")
        return 0
    if report.repairable:
        advice = "rerun the export command to repair them"
    elif report.move_away:
        advice = (
            "move the named entry away, then rerun the export command (it rebuilds what it can)"
        )
    else:
        advice = "a rerun cannot repair all of them: export again into a new folder"
    print(f"{report.root}: {len(report.problems)} problem(s) found; {advice}")
    return 1


def cmd_demo(args: argparse.Namespace) -> int:
    options = {
        "out": args.out,
        "preset": args.preset,
        "world": args.world,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "progress": not args.no_progress,
    }
    for name in (
        "steps",
        "batch_size",
        "lr",
        "test_count",
        "stream_workers",
        "draws",
        "arch",
        "stream_pool",
        "eval_every",
    ):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.quick and args.full:
        raise UsageError("--quick and --full exclude each other")
    if args.quick:
        config = DemoConfig.quick_config(**options)
    elif args.full:
        config = DemoConfig.full_config(**options)
    else:
        config = DemoConfig(**options)
    run_demo(config, report=print)
    return 0


def register(add: Add) -> None:
    """Add this module's subcommands through the parser factory ``add``."""
    p = add(
        "preview",
        cmd_preview,
        "Write a PNG grid of generated samples: image, mask overlay, pixel uncertainty.",
        "examples:\n  dgan-data preview toyface-14 --num 16 --out grid.png\n"
        "  dgan-data preview --generator g.pkl --interpreter i.safetensors --seed 3 "
        "--out grid.png\n"
        "  dgan-data preview --annotations ann/ --out check.png   # the masks you drew\n"
        "  dgan-data preview --export data/ --num 32 --out data.png   # an export on disk",
    )
    model_args(p)
    p.add_argument(
        "--num",
        type=count_at_most(MAX_PREVIEW_NUM),
        default=None,
        help=f"number of samples, 1-{MAX_PREVIEW_NUM} (default {DEFAULT_PREVIEW_NUM}; "
        "with --annotations, every drawn mask)",
    )
    p.add_argument(
        "--out",
        type=output_file,
        default=None,
        help="PNG to write (default grid.png; annotations.png with --annotations, "
        "export.png with --export)",
    )
    p.add_argument(
        "--seed", type=seed_int, default=None, help="base seed (as in export; default 0)"
    )
    p.add_argument(
        "--annotations",
        type=given_path,
        default=None,
        help="draw this annotation folder's images with their masks instead (no model): "
        "to check masks drawn or imported",
    )
    p.add_argument(
        "--export",
        type=given_path,
        default=None,
        help="draw the first samples of this finished export instead (no model; --num, "
        f"default {DEFAULT_PREVIEW_NUM})",
    )

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
        "  torchrun --nproc-per-node 4 -m dgan_data.cli -- export car-20 --num 10000 "
        "--out data/   # '--': torchrun would read --num as its --numa-binding\n"
        "  dgan-data export --merge --out data/   # select after all shards finished\n"
        "  dgan-data export --verify --out data/  # check every file; exit 1 if damaged\n\n"
        "Rerunning the command of a finished export verifies every file against its\n"
        "sha256 and regenerates damaged or missing ones. A folder another process is\n"
        "exporting the same shard into, selecting or repairing is refused (exit 2).",
    )
    model_args(p)
    p.add_argument(
        "--num",
        type=count_at_most(MAX_NUM),
        default=None,
        help=f"candidates to generate (at most {MAX_NUM:,}: export in several folders with "
        "different seeds for more)",
    )
    p.add_argument("--out", type=export_folder, required=True, help="export folder")
    p.add_argument(
        "--drop-uncertain",
        type=fraction,
        default=None,
        help="fraction of candidates dropped, most uncertain first (default 0.1)",
    )
    p.add_argument("--seed", type=seed_int, default=None, help="base seed (default 0)")
    p.add_argument(
        "--batch-size",
        type=count_at_most(MAX_BATCH),
        default=None,
        help="candidates per generator call (default 8)",
    )
    p.add_argument(
        "--shard",
        type=non_negative_int,
        default=None,
        help="this shard, below --num-shards (default: RANK)",
    )
    p.add_argument(
        "--num-shards",
        type=count_at_most(MAX_SHARDS),
        default=None,
        help="number of shards (default: WORLD_SIZE)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="only run the selection of a sharded export (with its recorded models and "
        "settings: PRESET and model options are refused, others must match dataset.json)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="only check a finished export (changes nothing; model options are refused, "
        "recorded settings must match): "
        "one line per problem, exit 0 if intact, 1 if damaged",
    )
    no_progress_arg(p)

    p = add(
        "demo",
        cmd_demo,
        "Train the same student on (a) the DatasetGAN stream, (b) 16 real labeled images "
        "(exact masks; (b') labeled by the toy annotator), (c) 5,000 real labeled images; "
        "score all on real toy test renders.",
        "Offline, on the CPU (defaults). Writes results.json and figure.png to --out.\n\n"
        "examples:\n  dgan-data demo\n"
        "  dgan-data demo --out demo/ --threads 2\n"
        "  dgan-data demo --preset toyface-14-wide --out demo-wide/   # the wide toy world\n"
        "  dgan-data demo --quick --out /tmp/demo   # a few steps: checks the setup",
    )
    p.add_argument("--out", type=output_folder, default=Path("dgan-demo"), help="output folder")
    p.add_argument(
        "--preset",
        default="toyface-14",
        help="toy preset (default toyface-14; toyface-14-wide: the wide toy world)",
    )
    p.add_argument(
        "--world",
        choices=sorted(VARIATIONS),
        default=None,
        help="toy world of the real arms and test renders (default: the one the preset "
        "was built on; base for a preset of your own)",
    )
    p.add_argument("--steps", type=positive_int, default=None, help="steps per arm")
    p.add_argument(
        "--batch-size",
        type=count_at_most(MAX_BATCH_SIZE),
        default=None,
        help=f"images per step (at most {MAX_BATCH_SIZE})",
    )
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (> 0)")
    p.add_argument(
        "--test-count",
        type=int_range(5, len(SPLITS["test"])),
        default=None,
        help=f"test renders (5..{len(SPLITS['test'])}, the toy test split)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="3 steps of 2 images per arm, 10 test images, arm (c) on 32 real renders, "
        "no stream workers, learning curves (--eval-every) on 8 validation renders",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="the converged schedule (a GPU's work; hours on a CPU): 6,000 steps x 16, "
        "3 draws, 1,000 test renders, learning curves every 500 steps, arm (a) also at "
        "psi 1.0",
    )
    p.add_argument(
        "--draws",
        type=int_range(1, MAX_DRAWS),
        default=None,
        help="repetitions with other seeds and 16-image draws (default 1)",
    )
    p.add_argument(
        "--arch",
        choices=("unet", "deeplabv3", "deeplabv3plus"),
        default=None,
        help="the student (default unet, the annotator's architecture)",
    )
    p.add_argument(
        "--stream-pool",
        type=count_at_most(MAX_STREAM_POOL),
        default=None,
        help="train arm (a) on this many stream samples made once, instead of "
        "the live stream (the paper's way; saves generation time on a CPU)",
    )
    p.add_argument(
        "--eval-every",
        type=non_negative_int,
        default=None,
        help="learning-curve evaluations every N steps on 200 validation renders (8 with "
        "--quick; 0: none)",
    )
    p.add_argument(
        "--device", type=device_name, default=None, help="cpu, cuda, ... (default: cuda if any)"
    )
    p.add_argument("--seed", type=seed_int, default=0, help="seed of model init, stream, batches")
    p.add_argument(
        "--threads",
        type=int_range(1, MAX_THREADS),
        default=None,
        help="torch CPU threads (default: all)",
    )
    p.add_argument(
        "--stream-workers",
        type=int_range(0, MAX_STREAM_WORKERS),
        default=None,
        help="CPU processes generating the stream in arm (a) (default: 2 on any CPU whatever "
        "--threads, since arm (a)'s batches depend on it; 0 on a GPU, with --stream-pool "
        "or --quick; 0 generates in the training process)",
    )
    no_progress_arg(p)
