"""Rebuild every shipped artifact of the toy world from seeds, and print the metrics.

    python examples/toy/rebuild.py --work runs/toy

Runs, in order: the reference annotator (``train_annotator.py``), the toy StyleGAN2
(``train_gan.py``; resumes from ``--work``/toygan if a checkpoint is there), the GAN
quality metrics (``evaluate_gan.py``), and the preset (``build_preset.py``: annotations,
interpreter, interpreter mIoU). The annotator and the preset files are written into the
package's ``dgan_data/toy/assets`` unless ``--assets`` says otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(args: list[str]) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default="runs/toy", help="folder for runs and reports")
    p.add_argument("--assets", default=None, help="where shipped files go (default: package)")
    p.add_argument("--gan-steps", type=int, default=5400)
    p.add_argument("--annotator-steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    import dgan_data

    assets = Path(args.assets or Path(dgan_data.__file__).parent / "toy" / "assets")
    t0 = time.time()
    threads = ["--threads", str(args.threads)]
    run(
        [
            str(HERE / "train_annotator.py"),
            "--steps",
            str(args.annotator_steps),
            "--batch-size",
            "16",
            "--seed",
            "0",
            "--out",
            str(assets / "annotator.safetensors"),
            *threads,
        ]
    )
    run(
        [
            str(HERE / "train_gan.py"),
            "--out",
            str(work / "toygan"),
            "--steps",
            str(args.gan_steps),
            "--batch",
            "8",
            "--save-every",
            "200",
            *threads,
        ]
    )
    generator = work / "toygan" / "generator.safetensors"
    run(
        [
            str(HERE / "evaluate_gan.py"),
            "--generator",
            str(generator),
            "--num",
            "1000",
            "--json",
            str(work / "quality.json"),
            "--grid",
            str(work / "quality.png"),
            *threads,
        ]
    )
    run(
        [
            str(HERE / "build_preset.py"),
            "--generator",
            str(generator),
            "--out",
            str(assets),
            "--max-steps",
            "2000",
            *threads,
        ]
    )
    print(f"toy world rebuilt in {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
