"""What the interpreter's pixel context costs: labeled images/s with and without it.

    python benchmarks/bench_context.py --batch-size 16 --batches 10 --threads 1 --json ctx.json

Labels batches of generated ``toyface-14`` samples (generator + interpreter, through a
``Labeler``, as the stream does) with a 10-model interpreter of the preset's layout and
each pixel context: none (DatasetGAN's), ``context=1``, the image, the image and
``context=1``/``2``. Speed does not depend on the weights, so the interpreters are freshly
initialised. Settings alternate within each repeat so a busy machine hurts all alike;
the table shows the median images/s and the ratio to no context.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _phases import check_preset, json_target, save_json

from dgan_data import Interpreter, Labeler, load_generator
from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import device_name, positive_int
from dgan_data.interpreter import feature_layout

SETTINGS = {
    "none": (False, 0),
    "context=1": (False, 1),
    "image": (True, 0),
    "image+context=1": (True, 1),
    "image+context=2": (True, 2),
}


def rate(labeler: Labeler, batch: int, batches: int, start: int) -> float:
    """Labeled images per second over ``batches`` batches of fresh seeds."""
    labeler.label(list(range(start, start + batch)))  # warm-up
    t0 = time.perf_counter()
    for b in range(batches):
        first = start + (b + 1) * batch
        labeler.label(list(range(first, first + batch)))
    return batches * batch / (time.perf_counter() - t0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1 exits 2 with one line."""
    ap = OneLineParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="toyface-14")
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--batches", type=positive_int, default=10)
    ap.add_argument("--repeats", type=positive_int, default=3)
    ap.add_argument("--device", type=device_name, default="cpu")
    ap.add_argument("--threads", type=positive_int, default=None)
    ap.add_argument("--json", type=json_target, default=None, help="write the results here")
    args = ap.parse_args(argv)
    check_preset(ap, args.preset, ("generator",))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    G = load_generator(args.preset, device=args.device)
    layout = feature_layout(G)
    labelers = {}
    for name, (with_image, context) in SETTINGS.items():
        image = (3, *G.resolution) if with_image else None
        interp = Interpreter(layout, 14, 10, image_layout=image, context=context)
        labelers[name] = (Labeler(G, interp.to(args.device)), interp.in_channels)
    rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for r in range(args.repeats):
        for name, (labeler, _) in labelers.items():
            start = 1_000_000 * (r + 1)
            rates[name].append(rate(labeler, args.batch_size, args.batches, start))
    base = statistics.median(rates["none"])
    rows = [
        {
            "setting": name,
            "in_channels": labelers[name][1],
            "images_per_s": statistics.median(values),
            "ratio_to_none": statistics.median(values) / base,
            "repeats": values,
        }
        for name, values in rates.items()
    ]
    print(f"{'pixel context':<18} {'inputs':>7} {'images/s':>9} {'vs none':>8}")
    for row in rows:
        print(
            f"{row['setting']:<18} {row['in_channels']:>7} {row['images_per_s']:>9.2f} "
            f"{row['ratio_to_none']:>8.2f}"
        )
    threads = torch.get_num_threads()
    print(
        f"{args.preset}, {args.device}, {threads} thread(s), batches of {args.batch_size}, "
        f"median of {args.repeats}"
    )
    result = {"preset": args.preset, "device": args.device, "threads": threads,
              "batch_size": args.batch_size, "batches": args.batches, "rows": rows}  # fmt: skip
    if args.json:
        save_json(args.json, result)
    return result


if __name__ == "__main__":
    run_script(main)
