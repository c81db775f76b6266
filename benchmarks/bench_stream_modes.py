"""Per-sample versus whole-batch streaming: images/s through a DataLoader.

    python benchmarks/bench_stream_modes.py --batch-size 16 --batches 20 --json modes.json

Per-sample mode (``DatasetGANStream(preset)`` + ``DataLoader(stream, batch_size=B)``)
and whole-batch mode (``DatasetGANStream(preset, batch_size=B)`` +
``DataLoader(stream, batch_size=None)``) on the shipped ``toyface-14`` preset, the same
number of candidates per generation step (``generation_batch = B``), alternating
repeats so a busy machine hurts both alike. Prints a table; ``--json`` writes it.

``--workers N`` also times whole-batch mode generated in N DataLoader workers, through a
plain DataLoader and through torchdata's ``StatefulDataLoader`` (which snapshots every
worker's stream state with each batch, what ``train_deeplab.py --workers N --resume``
relies on): the cost of those snapshots.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch
from _phases import check_preset, json_target, save_json
from torch.utils.data import DataLoader

from dgan_data import DatasetGANStream
from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import device_name, non_negative_int, positive_int
from dgan_data.stream.workers import stateful_loader


def make_loader(mode: str, preset: str, batch: int, device: str, workers: int) -> DataLoader:
    """The DataLoader of one mode (``workers``: only for the two worker modes)."""
    if mode == "per-sample":
        stream = DatasetGANStream(preset, generation_batch=batch, device=device)
        return DataLoader(stream, batch_size=batch)
    stream = DatasetGANStream(preset, batch_size=batch, device=device)
    if mode == "whole-batch":
        return DataLoader(stream, batch_size=None)
    loader = DataLoader if mode == "workers" else stateful_loader
    return loader(stream, batch_size=None, num_workers=workers, persistent_workers=True)


def rate(mode: str, preset: str, batch: int, batches: int, device: str, workers: int = 0) -> float:
    """Images per second over ``batches`` batches after one warm-up batch."""
    loader = make_loader(mode, preset, batch, device, workers)
    it = iter(loader)
    next(it)  # models loaded, first batch made
    t0 = time.perf_counter()
    for _ in range(batches):
        images, _ = next(it)
    if images.is_cuda:
        torch.cuda.synchronize()
    return batches * batch / (time.perf_counter() - t0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1 exits 2 with one line."""
    ap = OneLineParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="toyface-14")
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--batches", type=positive_int, default=20)
    ap.add_argument("--repeats", type=positive_int, default=3)
    ap.add_argument("--device", type=device_name, default="cpu")
    ap.add_argument("--threads", type=positive_int, default=None)
    ap.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="also whole-batch mode in this many CPU DataLoader workers, plain and stateful",
    )
    ap.add_argument("--json", type=json_target, default=None, help="write the results here")
    args = ap.parse_args(argv)
    check_preset(ap, args.preset, ("generator", "interpreter"))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    modes = ["per-sample", "whole-batch"]
    if args.workers:
        modes += ["workers", "workers-stateful"]
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.repeats):
        for mode in modes:
            device = "cpu" if mode.startswith("workers") else args.device
            results[mode].append(
                rate(mode, args.preset, args.batch_size, args.batches, device, args.workers)
            )
    table = {mode: statistics.median(v) for mode, v in results.items()}
    ratio = table["per-sample"] / table["whole-batch"]
    print(f"{'mode':<17} {'images/s (median of ' + str(args.repeats) + ')':>28}")
    for mode, value in table.items():
        print(f"{mode:<17} {value:>28.1f}")
    print(f"per-sample / whole-batch: {ratio:.3f}")
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    summary = {"config": config, "runs": results, "median": table, "ratio": ratio}
    if args.workers:
        stateful = table["workers-stateful"] / table["workers"]
        print(f"stateful / plain DataLoader ({args.workers} workers, cpu): {stateful:.3f}")
        summary["stateful_ratio"] = stateful
    if args.json:
        save_json(args.json, summary)


if __name__ == "__main__":
    run_script(main)
