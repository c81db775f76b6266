"""Rebuild every renderer-dependent artifact of the toy world in one command.

    python examples/toy/rebuild.py --work runs/toy
    python examples/toy/rebuild.py --work runs/toy --parts quality preset preview
    python examples/toy/rebuild.py --work runs/toy --dry-run     # print the plan only

Parts, in order (``--parts`` picks a subset; each prints its time, and a table of all
times closes the run):

- ``annotator``: the reference annotator (the toy "human"), ``train_annotator.py``,
  a U-Net trained on 6,000 real renders with exact masks;
- ``gan``: the toy StyleGAN2, ``train_gan.py`` in ``WORK/toygan``. It resumes from a
  checkpoint there; an empty folder starts from ``--gan-from`` (default: the committed
  ``examples/toy/checkpoint/toygan.pt``; ``scratch`` trains from step 0), then
  exports ``generator.safetensors``;
- ``quality``: KID, part validity and diversity (``evaluate_gan.py``) at psi 1.0 and
  at the preset's psi, written to ``WORK/quality_psi*.json``;
- ``preset``: annotations, interpreter and ``preset_metrics.json``
  (``build_preset.py``), refused when the GAN fails the diversity/KID gate unless
  ``--allow-ungated`` (the gate's result is recorded either way);
- ``preview``: the README's preview figure (``dgan-data preview``).

Shipped files go to the package's ``dgan_data/toy/assets`` unless ``--assets`` says
otherwise.

``--world wide`` rebuilds the ``toyface-14-wide`` preset in the wider toy world (the
README's *A wider world*): the annotator and the GAN train on its renders (the GAN from
the committed ``toygan_wide.pt``, the base GAN fine-tuned there), the quality part
compares with its renders, and the files go to the package's ``dgan_data/toy/assets_wide``
(never over the base world's), with the preview at
``examples/toy/figures/toyface14_wide_preview.png``.

Nonsense settings (steps < 1, unknown parts, a missing ``--gan-from``) exit with code 2
and one line on stderr.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from coarse_maps import CoarseDropped
from train_gan import build_generator

from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.models import context_radius
from dgan_data.fileio import output_path_problem
from dgan_data.interpreter.context import MAX_CONTEXT
from dgan_data.toy.quality import REAL_EVAL_SEEDS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PARTS = ("annotator", "gan", "quality", "preset", "preview")
#: Where an empty GAN folder starts from, per toy world.
COMMITTED_GANS = {
    "base": HERE / "checkpoint" / "toygan.pt",
    "wide": HERE / "checkpoint" / "toygan_wide.pt",
}
#: Total GAN iterations (batch 8) per toy world, those of the shipped generators (the
#: committed checkpoints' steps: the GAN part then only exports); the wide GAN continues
#: the base one. A larger ``--gan-steps`` trains on.
GAN_STEPS = {"base": 24000, "wide": 43000}
#: ``--quality-num`` at most: ``evaluate_gan.py --num`` (two disjoint real sets of it).
MAX_QUALITY_NUM = len(REAL_EVAL_SEEDS) // 2
#: How each world's shipped interpreter reads the generator (``build_preset.py
#: --with-image --context --drop-coarse``): the image, the neighbourhood radius, and
#: how many of the coarsest feature maps it ignores.
SHIPPED_INTERPRETER = {
    "base": {"with_image": True, "context": 1, "drop_coarse": 0},
    "wide": {"with_image": True, "context": 1, "drop_coarse": 0},
}


class StepFailedError(Exception):
    """A command of a part exited with a non-zero code (it printed its own error)."""

    def __init__(self, part: str, command: str, returncode: int) -> None:
        super().__init__(f"part {part} ({command}) exited with code {returncode}")
        self.returncode = returncode


def command_name(args: list[str]) -> str:
    """What a command runs, as a user would name it: ``dgan-data preview`` for
    ``python -m dgan_data.cli preview ...``, else the script's name (``evaluate_gan.py``)."""
    if args[1:3] == ["-m", "dgan_data.cli"]:
        return " ".join(["dgan-data", *args[3:4]])
    return Path(args[1]).name if len(args) > 1 else Path(args[0]).name


class Plan:
    """Commands grouped by part; ``run`` executes them (or prints them on a dry run)."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.times: list[tuple[str, float]] = []

    def part(self, name: str, commands: list[list[str]], before=None) -> None:
        print(f"== {name}", flush=True)
        t0 = time.time()
        if before is not None and not self.dry_run:
            before()
        for args in commands:
            print("$", " ".join(args), flush=True)
            if not self.dry_run:
                try:
                    subprocess.run(args, check=True)
                except subprocess.CalledProcessError as err:
                    raise StepFailedError(name, command_name(args), err.returncode) from None
        seconds = time.time() - t0
        self.times.append((name, seconds))
        print(f"== {name}: {seconds / 60:.1f} min", flush=True)

    def table(self) -> str:
        width = max([len(n) for n, _ in self.times] + [5])
        rows = [f"{'part':<{width}}  minutes"]
        rows += [f"{n:<{width}}  {s / 60:7.1f}" for n, s in self.times]
        rows.append(f"{'total':<{width}}  {sum(s for _, s in self.times) / 60:7.1f}")
        return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(
        prog=Path(__file__).name,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--work", default="runs/toy", help="folder for runs and reports")
    p.add_argument("--assets", default=None, help="where shipped files go (default: package)")
    p.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        metavar="PART",
        help=f"subset of {', '.join(PARTS)} (default: all, in that order)",
    )
    p.add_argument(
        "--gan-steps",
        type=int,
        default=None,
        help=f"total GAN iterations, batch 8 (default: {GAN_STEPS['base']} base, "
        f"{GAN_STEPS['wide']} wide)",
    )
    p.add_argument(
        "--gan-from",
        default=None,
        help="checkpoint an empty WORK/toygan starts from, or 'scratch' (default: the "
        "committed checkpoint of the world)",
    )
    p.add_argument(
        "--world",
        choices=sorted(COMMITTED_GANS),
        default="base",
        help="toy world to rebuild (wide: its files go to dgan_data/toy/assets_wide unless "
        "--assets)",
    )
    p.add_argument("--annotator-steps", type=int, default=8000)
    p.add_argument("--interpreter-steps", type=int, default=3000, help="cap per model")
    p.add_argument(
        "--interpreter-image",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the interpreter reads the generated image (default: as the world's preset)",
    )
    p.add_argument(
        "--interpreter-context",
        type=context_radius,
        default=None,
        help=f"interpreter neighbourhood radius, 0-{MAX_CONTEXT} (default: as the world's preset)",
    )
    p.add_argument(
        "--interpreter-drop-coarse",
        type=int,
        default=None,
        help="coarsest generator maps the interpreter ignores (default: as the world's preset)",
    )
    p.add_argument("--quality-num", type=int, default=2000, help="images per set for KID")
    p.add_argument(
        "--allow-ungated",
        action="store_true",
        help="build the preset even if the GAN fails the diversity/KID gate",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    if args.gan_steps is None:
        args.gan_steps = GAN_STEPS[args.world]
    shipped = SHIPPED_INTERPRETER[args.world]
    option_of = {"with_image": "image", "context": "context", "drop_coarse": "drop_coarse"}
    for key, option in option_of.items():
        if getattr(args, f"interpreter_{option}") is None:
            setattr(args, f"interpreter_{option}", shipped[key])
    if args.interpreter_drop_coarse < 0:
        p.error(f"--interpreter-drop-coarse must be >= 0, got {args.interpreter_drop_coarse}")
    try:  # build_preset.py's bound, on the generator the gan part trains: refused now, not
        # after the annotator, GAN and quality parts have run for hours
        CoarseDropped(toy_generator(args.world), args.interpreter_drop_coarse)
    except ValueError as err:
        p.error(f"--interpreter-drop-coarse {args.interpreter_drop_coarse}: {err}")
    for name in ("gan_steps", "annotator_steps", "interpreter_steps", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.quality_num < 2:
        p.error(f"--quality-num must be >= 2, got {args.quality_num}")
    if args.quality_num > MAX_QUALITY_NUM:
        p.error(f"--quality-num must be at most {MAX_QUALITY_NUM} (evaluate_gan.py compares two "
                f"disjoint real sets of that many), got {args.quality_num}")  # fmt: skip
    if args.gan_from is None:
        args.gan_from = str(COMMITTED_GANS[args.world])
    if args.gan_from != "scratch" and not Path(args.gan_from).is_file():
        p.error(f"--gan-from {args.gan_from}: no such checkpoint (or say 'scratch')")
    # a file at the path, or above it, is named here, not as a traceback from mkdir
    for flag, folder in (("--work", args.work), ("--assets", args.assets)):
        problem = folder and output_path_problem(Path(folder), folder=True)
        if problem:
            p.error(f"{flag} {folder}: {problem}")
    return args


def toy_generator(world: str):
    """An untrained toy generator (``train_gan.py``'s network) at the resolution of the
    world's preset, the one ``build_preset.py`` accepts: its feature maps are the ones
    ``--interpreter-drop-coarse`` counts."""
    from dgan_data.toy.preset import toy_preset_fields

    return build_generator(toy_preset_fields(world)["image_resolution"][0])


def build_plan(args: argparse.Namespace) -> Plan:
    """Run (or print) the chosen parts in order; returns the plan with its timings."""
    import dgan_data
    from dgan_data.toy import world_tag
    from dgan_data.toy.preset import TOY_TRUNCATION_PSI, toy_assets_dir, toy_preset_name

    py = sys.executable
    work = Path(args.work)
    shipped = Path(dgan_data.__file__).parent / toy_assets_dir(args.world)
    assets = Path(args.assets) if args.assets else shipped
    threads = ["--threads", str(args.threads)]
    world = ["--world", args.world]
    gan_dir = work / "toygan"
    generator = gan_dir / "generator.safetensors"
    annotator = assets / "annotator.safetensors"
    preset_name = toy_preset_name(args.world)
    psis = sorted({1.0, float(TOY_TRUNCATION_PSI)}, reverse=True)
    quality = {psi: work / f"quality_psi{psi:g}.json" for psi in psis}
    plan = Plan(args.dry_run)
    if not args.dry_run:
        work.mkdir(parents=True, exist_ok=True)

    if "annotator" in args.parts:
        # both worlds train train_annotator.py's default U-Net: a deeper one labels the
        # wide world better (0.811 against 0.795 mIoU at the same 8,000 steps) but its
        # 12.6 MB would take the package data past 25 MB (README, *A wider world*)
        plan.part(
            "annotator",
            [
                [
                    py,
                    str(HERE / "train_annotator.py"),
                    "--steps",
                    str(args.annotator_steps),
                    "--batch-size",
                    "16",
                    "--seed",
                    "0",
                    "--out",
                    str(annotator),
                    *world,
                    *threads,
                ]
            ],
        )
    if "gan" in args.parts:

        def seed_run_folder() -> None:
            ckpt = gan_dir / "checkpoint.pt"
            if args.gan_from != "scratch" and not ckpt.exists():
                gan_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(args.gan_from, ckpt)

        train = [
            py,
            str(HERE / "train_gan.py"),
            "--out",
            str(gan_dir),
            "--batch",
            "8",
            "--save-every",
            "500",
            *world,
            *threads,
        ]
        plan.part(
            "gan",
            [
                [*train, "--steps", str(args.gan_steps)],
                [*train, "--steps", str(args.gan_steps), "--export-only"],
            ],
            before=seed_run_folder,
        )
    if "quality" in args.parts:
        plan.part(
            "quality",
            [
                [
                    py,
                    str(HERE / "evaluate_gan.py"),
                    "--generator",
                    str(generator),
                    "--annotator",
                    str(annotator),
                    "--num",
                    str(args.quality_num),
                    "--truncation-psi",
                    f"{psi:g}",
                    "--json",
                    str(path),
                    "--grid",
                    str(work / f"quality_psi{psi:g}.png"),
                    *world,
                    *threads,
                ]
                for psi, path in quality.items()
            ],
        )
    if "preset" in args.parts:
        gate = ["--quality", str(quality[1.0])] + (
            ["--allow-ungated"] if args.allow_ungated else []
        )
        plan.part(
            "preset",
            [
                [
                    py,
                    str(HERE / "build_preset.py"),
                    "--generator",
                    str(generator),
                    "--annotator",
                    str(annotator),
                    "--out",
                    str(assets),
                    "--max-steps",
                    str(args.interpreter_steps),
                    "--context",
                    str(args.interpreter_context),
                    "--drop-coarse",
                    str(args.interpreter_drop_coarse),
                    *(["--with-image"] if args.interpreter_image else []),
                    *gate,
                    *threads,
                ]
            ],
        )
    if "preview" in args.parts:
        # the README's figures show the shipped presets; any other build previews in WORK
        if assets.resolve() == shipped.resolve():
            name = f"toyface14{world_tag(args.world)}_preview.png"
            figure = REPO / "examples" / "toy" / "figures" / name
        else:
            figure = work / "preview.png"
        plan.part(
            "preview",
            [
                [
                    py,
                    "-m",
                    "dgan_data.cli",
                    "preview",
                    preset_name,
                    "--generator",
                    str(assets / "generator.safetensors"),
                    "--interpreter",
                    str(assets / "interpreter.safetensors"),
                    "--num",
                    "16",
                    "--seed",
                    "0",
                    "--out",
                    str(figure),
                ]
            ],
        )
    return plan


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        plan = build_plan(args)
    except StepFailedError as err:  # the step printed its own error
        print(f"rebuild.py: error: {err}", file=sys.stderr)
        return err.returncode if 0 < err.returncode < 128 else 1
    print(plan.table())
    return 0


if __name__ == "__main__":
    run_script(main)
