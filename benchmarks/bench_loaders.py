"""What the checks of the file loaders cost: the ``.pt`` pickle scan and ``LabeledFolder``.

    python benchmarks/bench_loaders.py --json loaders.json
    python benchmarks/bench_loaders.py --quick

Two costs of reading untrusted files safely, measured in one process:

- ``.pt`` checkpoints: ``safe_torch_load`` scans the file's pickles with inert objects
  (refusing allocations the file does not back) before torch's weights-only loader reads
  them. The table shows torch's load alone, the scan alone, and ``safe_torch_load`` (zip
  check + scan + load), for a rosinality-style StyleGAN2 checkpoint (``--resolution``,
  the paper's channel table) and for a file of many small tensors (``--tensors``), the
  scan's worst case.
- ``LabeledFolder``: opening a folder of real photos decodes every image and mask once,
  so a damaged file is named at once rather than at evaluation. The table shows the
  seconds to open ``--images`` JPEG photos of ``--size`` px and the milliseconds per
  megapixel.

Medians over ``--repeats`` runs; files are written to a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _phases import json_target, save_json
from PIL import Image

from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import positive_int
from dgan_data.downstream.realdata import LabeledFolder
from dgan_data.generators import StyleGAN2Generator
from dgan_data.generators.torch_files import is_zip_archive, safe_torch_load
from dgan_data.generators.unpickle import scan_torch_file

MiB = 2**20


def median_seconds(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def checkpoint_rows(folder: Path, resolution: int, tensors: int, repeats: int) -> list[dict]:
    """Load timings of a StyleGAN2 checkpoint and of a file of ``tensors`` small tensors."""
    torch.manual_seed(0)
    G = StyleGAN2Generator(resolution)
    files = {
        f"stylegan2-{resolution} (rosinality .pt)": {
            "g_ema": G.state_dict(),
            "latent_avg": torch.zeros(G.style_dim),
        },
        f"{tensors} tensors of 4 floats": {f"t{i}": torch.zeros(4) for i in range(tensors)},
    }
    rows = []
    for name, obj in files.items():
        path = folder / f"{len(rows)}.pt"
        torch.save(obj, path)
        zip_archive = is_zip_archive(path)
        load = median_seconds(
            lambda p=path: torch.load(p, map_location="cpu", weights_only=True), repeats
        )
        scan = median_seconds(lambda p=path, z=zip_archive: scan_torch_file(p, z), repeats)
        safe = median_seconds(lambda p=path: safe_torch_load(p), repeats)
        rows.append(
            {
                "file": name,
                "mib": path.stat().st_size / MiB,
                "torch_load_s": load,
                "scan_s": scan,
                "safe_torch_load_s": safe,
                "overhead": safe / load - 1,
            }
        )
    return rows


def folder_row(folder: Path, images: int, size: int, repeats: int) -> dict:
    """Seconds to open a LabeledFolder of ``images`` JPEG photos of ``size`` x ``size``."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    for i in range(images):
        photo = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(photo).save(folder / "images" / f"{i:04d}.jpg", quality=90)
        mask = np.zeros((size, size), np.uint8)
        mask[size // 4 : size // 2, size // 4 : size // 2] = 1
        Image.fromarray(mask).save(folder / "masks" / f"{i:04d}.png")
    seconds = median_seconds(lambda: LabeledFolder(folder, num_classes=2), repeats)
    megapixels = images * size * size / 1e6
    return {
        "images": images,
        "size": size,
        "open_s": seconds,
        "ms_per_megapixel": 1000 * seconds / megapixels,
    }


#: The options' defaults, and those under ``--quick`` (for the options not given).
DEFAULTS = {"resolution": 256, "tensors": 60000, "images": 50, "size": 1024, "repeats": 3}
QUICK = {"resolution": 64, "tensors": 2000, "images": 8, "size": 256, "repeats": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1 exits 2 with one line."""
    ap = OneLineParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    # default None: --quick changes only the options not given (filled in below)
    ap.add_argument(
        "--resolution", type=int, choices=(64, 256, 1024), default=None, help="default 256"
    )
    ap.add_argument("--tensors", type=positive_int, default=None, help="default 60000")
    ap.add_argument("--images", type=positive_int, default=None, help="default 50")
    ap.add_argument(
        "--size", type=positive_int, default=None, help="photo side in px; default 1024"
    )
    ap.add_argument("--repeats", type=positive_int, default=None, help="default 3")
    ap.add_argument("--threads", type=positive_int, default=None)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="defaults of 64 px, 2,000 tensors, 8 photos of 256 px, 1 repeat",
    )
    ap.add_argument("--json", type=json_target, default=None, help="write the results here")
    args = ap.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = checkpoint_rows(Path(tmp), args.resolution, args.tensors, args.repeats)
        (Path(tmp) / "folder").mkdir()
        folder = folder_row(Path(tmp) / "folder", args.images, args.size, args.repeats)
    print(
        f"{'checkpoint':<36} {'MiB':>7} {'torch.load s':>13} {'scan s':>8} "
        f"{'safe_torch_load s':>18} {'overhead':>9}"
    )
    for r in rows:
        print(
            f"{r['file']:<36} {r['mib']:7.1f} {r['torch_load_s']:13.3f} {r['scan_s']:8.3f} "
            f"{r['safe_torch_load_s']:18.3f} {100 * r['overhead']:8.0f}%"
        )
    print(
        f"\nLabeledFolder: {folder['images']} JPEG photos of {folder['size']} px opened "
        f"(every file decoded) in {folder['open_s']:.2f} s, "
        f"{folder['ms_per_megapixel']:.1f} ms per megapixel"
    )
    results = {
        "checkpoints": rows,
        "labeled_folder": folder,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if args.json is not None:
        save_json(args.json, results)
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    run_script(main)
