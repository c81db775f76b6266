"""Augmentation throughput: images per second of BatchAugment vs the kornia and albumentations
adapters, on comparable pipelines (horizontal flip, affine with scale/shift/rotation, colour
jitter), for (image, mask) batches.

Usage: python benchmarks/bench_augment.py [--sizes 64 256] [--batch-size 8] [--repeats 20]
       [--threads 1] [--device cpu] [--json PATH]

The albumentations adapter is CPU-bound and per sample; on a CUDA device its time includes the
device -> host -> device round trip of every batch.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from _phases import json_target, save_json
from lightning_utilities.core.imports import RequirementCache

from dgan_data.augment import AlbumentationsAugment, BatchAugment, KorniaAugment
from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import device_name, positive_int

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

_KORNIA = RequirementCache("kornia")
_ALBUMENTATIONS = RequirementCache("albumentations")

AugFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def candidates() -> dict[str, AugFn]:
    """The augmenters to compare; the adapters only where their library is installed."""
    out: dict[str, AugFn] = {
        "BatchAugment": BatchAugment(),
        "BatchAugment (geometry only)": BatchAugment(
            brightness=None, contrast=None, saturation=None, hue=None
        ),
    }
    if _KORNIA:
        import kornia.augmentation as KA

        out["KorniaAugment"] = KorniaAugment(
            KA.AugmentationSequential(
                KA.RandomHorizontalFlip(p=0.5),
                KA.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.8, 1.25), p=1.0),
                KA.ColorJitter(0.2, 0.2, 0.2, 0.02, p=1.0),
                data_keys=["input", "mask"],
            )
        )
    if _ALBUMENTATIONS:
        import albumentations as A

        compose = A.Compose(
            [
                A.HorizontalFlip(p=0.5),
                A.Affine(scale=(0.8, 1.25), translate_percent=(-0.1, 0.1), rotate=(-10, 10), p=1.0),
                A.ColorJitter(0.2, 0.2, 0.2, 0.02, p=1.0),
            ]
        )
        out["AlbumentationsAugment (float32)"] = AlbumentationsAugment(compose)
        out["AlbumentationsAugment (uint8)"] = AlbumentationsAugment(compose, image_dtype="uint8")
    return out


def bench(fn: AugFn, batch_size: int, size: int, repeats: int, device: str) -> dict[str, float]:
    """Median seconds per batch over ``repeats`` calls, after two warm-up calls."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, 3, size, size, generator=g).to(device)
    masks = torch.randint(0, 10, (batch_size, size, size), generator=g).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(2):
        fn(images, masks, g)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn(images, masks, g)
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "batch_size": batch_size,
        "size": size,
        "ms_per_batch_median": 1e3 * med,
        "ms_per_batch_min": 1e3 * min(times),
        "images_per_second": batch_size / med,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1 exits 2 with one line."""
    ap = OneLineParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=positive_int, nargs="+", default=[64, 256])
    ap.add_argument("--batch-size", type=positive_int, default=8)
    ap.add_argument("--repeats", type=positive_int, default=20)
    ap.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    ap.add_argument("--device", type=device_name, default="cpu")
    ap.add_argument("--json", type=json_target, default=None, help="write the results here as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import cv2

        cv2.setNumThreads(args.threads)
    except ImportError:
        pass

    rows = []
    for name, fn in candidates().items():
        for size in args.sizes:
            rows.append(
                {"augment": name, **bench(fn, args.batch_size, size, args.repeats, args.device)}
            )
    print(f"augmentation, device={args.device}, threads={args.threads}, batch={args.batch_size}")
    print(
        f"{'augment':<32} {'size':>5} {'ms/batch (median)':>18} {'ms/batch (min)':>15} {'img/s':>8}"
    )
    for r in rows:
        print(
            f"{r['augment']:<32} {r['size']:>5} {r['ms_per_batch_median']:>18.2f} "
            f"{r['ms_per_batch_min']:>15.2f} {r['images_per_second']:>8.0f}"
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
