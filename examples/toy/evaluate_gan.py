"""Evaluate a toy-world generator: KID on annotator features and part validity.

Compares ``--num`` generated images (seeds 0 .. num-1 via ``z_from_seeds``, constant
noise) with ``--num`` real renders from train seeds 40 000+ (seen by neither the GAN
nor the annotator), and reports the real-vs-real KID of two disjoint real sets as
the floor. See ``dgan_data.toy.quality`` for the definitions. ``--world`` picks the toy
world of the real renders (give a generator and an annotator of that world).

    python examples/toy/evaluate_gan.py --generator runs/toygan/generator.safetensors \
        --num 2000 --json runs/toygan/quality.json --grid runs/toygan/quality.png --threads 1

Prints a table (KID x 1000), writes the full result as JSON and a PNG with real
renders (left) beside generated samples (right).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch

from dgan_data import load_generator
from dgan_data.cli import USER_ERRORS, OneLineParser, run_script, script_error
from dgan_data.cli.common import (
    device_name,
    int_range,
    positive_int,
    seed_int,
    unit_float,
    writable_output_file,
)
from dgan_data.fileio import write_json
from dgan_data.seeds import MAX_SEED
from dgan_data.toy import VARIATIONS
from dgan_data.toy.annotator import load_annotator
from dgan_data.toy.quality import (
    REAL_EVAL_SEEDS,
    evaluate_generator,
    generate_images,
    render_images,
    save_comparison_grid,
)

log = logging.getLogger("evaluate_gan")
#: ``--num`` at most: two disjoint real sets of it come from REAL_EVAL_SEEDS.
MAX_NUM = len(REAL_EVAL_SEEDS) // 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = OneLineParser(
        prog=Path(__file__).name,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("--generator", type=Path, required=True, help="generator file")
    ap.add_argument("--annotator", type=Path, default=None, help="default: the shipped one")
    ap.add_argument(
        "--num", type=int_range(2, MAX_NUM), default=2000, help="images per set (<= 5000)"
    )
    ap.add_argument("--seed", type=seed_int, default=0, help="first generated seed; KID subsets")
    ap.add_argument("--truncation-psi", type=unit_float, default=1.0)
    ap.add_argument("--num-subsets", type=positive_int, default=10)
    ap.add_argument("--subset-size", type=int_range(2), default=1000)
    ap.add_argument("--batch-size", type=positive_int, default=64)
    ap.add_argument("--json", type=writable_output_file, default=None, help="write the result here")
    ap.add_argument(
        "--grid", type=writable_output_file, default=None, help="write a real|generated PNG here"
    )
    ap.add_argument(
        "--grid-count",
        type=int_range(1, len(REAL_EVAL_SEEDS)),
        default=32,
        help="images per side of the grid",
    )
    ap.add_argument(
        "--world",
        choices=sorted(VARIATIONS),
        default="base",
        help="toy world of the real renders (the generator and annotator should be of it)",
    )
    ap.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    ap.add_argument(
        "--device", type=device_name, default=None, help="default: cuda if available, else cpu"
    )
    args = ap.parse_args(argv)
    last = args.seed + max(args.num, args.grid_count if args.grid else 0) - 1
    if last >= MAX_SEED:
        ap.error(
            f"--seed {args.seed}: the generated seeds run to {last}, past the last seed "
            "2**63 - 1; give a smaller --seed"
        )
    return args


def format_table(result: dict[str, Any]) -> str:
    """The headline numbers as a small text table (KID scaled by 1000)."""
    rows = [
        (
            "KID x1000, generated vs real",
            f"{1e3 * result['kid_mean']:8.3f} ± {1e3 * result['kid_std']:.3f}",
        ),
        (
            "KID x1000, real vs real",
            f"{1e3 * result['kid_real_mean']:8.3f} ± {1e3 * result['kid_real_std']:.3f}",
        ),
        ("part validity, generated", f"{100 * result['validity_generated']:7.1f} %"),
        ("part validity, real (annotator)", f"{100 * result['validity_real']:7.1f} %"),
        ("part validity, real (exact masks)", f"{100 * result['validity_real_exact']:7.1f} %"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append(
        f"(n = {result['num']} per set, {result['num_subsets']} subsets of "
        f"{result['subset_size']}, psi = {result['truncation_psi']}, world {result['world']})"
    )
    if result["failures_generated"]:
        lines.append(f"generated failures by check: {result['failures_generated']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Evaluate and return the result; a missing or unreadable generator or annotator
    (or its ``.json``) exits 2 with one line."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except USER_ERRORS as err:
        raise SystemExit(script_error(Path(__file__).name, err)) from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    G = load_generator(args.generator, device=device)
    annotator = load_annotator(args.annotator, device=device)
    t0 = time.time()
    result = evaluate_generator(
        G,
        annotator,
        num=args.num,
        seed=args.seed,
        truncation_psi=args.truncation_psi,
        num_subsets=args.num_subsets,
        subset_size=args.subset_size,
        batch_size=args.batch_size,
        variation=args.world,
    )
    result["seconds"] = round(time.time() - t0, 1)
    result["generator"] = str(args.generator)
    result["annotator"] = str(args.annotator) if args.annotator else "shipped"
    print(format_table(result))
    if args.json:
        # atomic: a failed write keeps the earlier file; strict JSON (no NaN/Infinity)
        write_json(args.json, result, named_by_user=True, allow_nan=False)
        log.info("wrote %s", args.json)
    if args.grid:
        n = args.grid_count
        real, _ = render_images(REAL_EVAL_SEEDS[:n], variation=args.world)
        fake = generate_images(G, range(args.seed, args.seed + n), args.truncation_psi)
        save_comparison_grid(real, fake, args.grid)
        log.info("wrote %s", args.grid)
    return result


if __name__ == "__main__":
    run_script(main)
