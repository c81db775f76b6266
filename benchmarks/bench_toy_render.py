"""Toy renderer throughput: images per second of ``render_faces`` at a given batch size.

Usage: python benchmarks/bench_toy_render.py [--batch-size 256] [--repeats 5]
       [--threads 1] [--device cpu] [--json PATH]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from _phases import json_target, save_json

from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import device_name, int_range, positive_int
from dgan_data.toy import render_faces

#: ``render_faces`` refuses smaller images.
MIN_SIZE = 16


def bench(batch_size: int, repeats: int, size: int, device: str) -> dict[str, float]:
    """Time ``repeats`` renders of distinct seed batches after one warm-up batch."""
    render_faces(range(batch_size), size=size, device=device)  # warm-up
    times = []
    for r in range(repeats):
        seeds = range((r + 1) * batch_size, (r + 2) * batch_size)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        render_faces(seeds, size=size, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "batch_size": batch_size,
        "size": size,
        "seconds_per_batch_median": med,
        "seconds_per_batch_min": min(times),
        "images_per_second": batch_size / med,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1 or a size below 16 exits 2 with one line."""
    ap = OneLineParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch-size", type=positive_int, nargs="+", default=[256])
    ap.add_argument("--repeats", type=positive_int, default=5)
    ap.add_argument("--size", type=int_range(MIN_SIZE), default=64, help="the renderer's >= 16")
    ap.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    ap.add_argument("--device", type=device_name, default="cpu")
    ap.add_argument("--json", type=json_target, default=None, help="write the results here as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = [bench(b, args.repeats, args.size, args.device) for b in args.batch_size]
    print(f"toy renderer, device={args.device}, threads={args.threads}, size={args.size}")
    print(f"{'batch':>6} {'s/batch (median)':>17} {'s/batch (min)':>14} {'images/s':>9}")
    for r in rows:
        print(
            f"{r['batch_size']:>6} {r['seconds_per_batch_median']:>17.3f} "
            f"{r['seconds_per_batch_min']:>14.3f} {r['images_per_second']:>9.1f}"
        )
    if args.json is not None:
        meta = {
            "device": args.device,
            "threads": args.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        save_json(args.json, {"meta": meta, "results": rows})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    run_script(main)
