"""Quickstart: a live stream of labeled batches from a generator and an interpreter.

    python examples/stream_quickstart.py                       # the shipped toy preset
    python examples/stream_quickstart.py --preset bedroom-19   # files in the preset cache
    python examples/stream_quickstart.py --generator G.pt --interpreter interp.safetensors

The stream generates each batch on the device (CUDA when available), labels it with the
interpreter, drops the most uncertain images and yields full batches. Nothing is written
to disk. Without ``--preset``/``--generator`` it uses the toy preset ``toyface-14`` when
its files are installed; otherwise a stand-in (a small random generator with a random
interpreter) so that the script still runs offline: the labels are then meaningless.
With only one of ``--generator``/``--interpreter`` the toy preset gives the other.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from dgan_data.cli import USER_ERRORS, OneLineParser, run_script, script_error
from dgan_data.cli.common import (
    UsageError,
    count_at_most,
    device_name,
    positive_int,
    seed_int,
)
from dgan_data.conventions import MAX_BATCH
from dgan_data.stream import IGNORE_INDEX, DatasetGANStream
from dgan_data.stream.dataset import MAX_SAMPLES_PER_EPOCH as MAX_SAMPLES

DEFAULT_PRESET = "toyface-14"
# A small rosinality StyleGAN2 checkpoint that ships with the tests of a source checkout.
FIXTURE = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "fixtures"
    / "reference"
    / "rosinality_stylegan2_32px.pt"
)


def stand_in_models(num_classes: int = 6):
    """A small generator (the test fixture if present, else random) and a random
    interpreter: enough to show shapes and the loop, not real labels."""
    from dgan_data import load_generator
    from dgan_data.generators import StyleGAN2Generator
    from dgan_data.interpreter import Interpreter, feature_layout

    if FIXTURE.is_file():
        G = load_generator(FIXTURE)
        what = f"the test checkpoint {FIXTURE.name}"
    else:
        torch.manual_seed(0)
        G = StyleGAN2Generator(32, style_dim=64, n_mlp=2, channels={4: 32, 8: 32, 16: 32, 32: 32})
        what = "a random 32 px StyleGAN2"
    interp = Interpreter(feature_layout(G), num_classes, num_models=3, label_size=G.resolution)
    with torch.no_grad():  # random BatchNorm statistics and a sharper last layer: varied labels
        g = torch.Generator().manual_seed(0)
        interp.bn1_var.fill_(0.01)
        interp.bn1_mean.copy_(torch.randn(interp.bn1_mean.shape, generator=g) * 0.05)
        interp.w3.mul_(50)
    print(
        f"NOTE: preset {DEFAULT_PRESET!r} is not installed here; using {what} with a RANDOM "
        "interpreter. The labels below are meaningless; pass --preset or "
        "--generator/--interpreter for real data."
    )
    return G, interp, [f"class{k}" for k in range(num_classes)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; a count below 1, a batch above MAX_BATCH, more samples than the
    stream's limit or a seed outside [0, 2**63) exits 2 with one line."""
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help=f"preset name (default {DEFAULT_PRESET} when installed)")
    parser.add_argument("--generator", help="generator checkpoint (.pt, .pkl, .safetensors)")
    parser.add_argument("--interpreter", help="interpreter .safetensors")
    parser.add_argument("--batches", type=positive_int, default=3)
    parser.add_argument("--batch-size", type=count_at_most(MAX_BATCH), default=4)
    parser.add_argument(
        "--device", type=device_name, default=None, help="default: cuda when available"
    )
    parser.add_argument("--augment", default="default", choices=("default", "none"))
    parser.add_argument("--seed", type=seed_int, default=0)
    args = parser.parse_args(argv)
    if args.batches * args.batch_size > MAX_SAMPLES:
        parser.error(
            f"--batches {args.batches} x --batch-size {args.batch_size} is more than "
            f"{MAX_SAMPLES} samples, the stream's limit"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the quickstart; an unknown preset, preset files not installed or a missing or
    unreadable generator or interpreter exit 2 with one line."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        return run(args)
    except USER_ERRORS as err:
        return script_error("stream_quickstart.py", err)


def run(args: argparse.Namespace) -> int:
    """Stream the batches and print their shapes and the class histogram; without
    ``--preset`` the toy preset gives what ``--generator``/``--interpreter`` leave out."""
    preset, generator, interpreter = args.preset, args.generator, args.interpreter
    if preset is None and generator is None and interpreter is None:
        if _default_installed():
            preset = DEFAULT_PRESET
        else:
            generator, interpreter, _ = stand_in_models()
    elif preset is None and (generator is None or interpreter is None):
        given, missing = (
            ("--generator", "--interpreter")
            if interpreter is None
            else ("--interpreter", "--generator")
        )
        if not _default_installed(missing[2:]):
            raise UsageError(
                f"{given} needs {missing} too (or --preset): the default preset "
                f"{DEFAULT_PRESET} is not installed here"
            )
        preset = DEFAULT_PRESET
        print(f"NOTE: no {missing}; using the one of preset {DEFAULT_PRESET!r}")

    # ---- the user-facing part -------------------------------------------------------
    stream = DatasetGANStream(
        preset,
        generator=generator,
        interpreter=interpreter,
        batch_size=args.batch_size,
        drop_uncertain=0.1,  # drop the 10 % most uncertain images
        augment=args.augment,  # flips, scale, rotation, colour jitter, on the device
        samples_per_epoch=args.batches * args.batch_size,  # None: stream forever
        seed=args.seed,
        device=args.device,
    )
    # the classes come from the interpreter (the preset's, or the file's own names)
    interp = stream.labeler().interpreter
    num_classes = interp.num_classes
    class_names = list(interp.class_names or [f"class{k}" for k in range(num_classes)])
    loader = DataLoader(stream, batch_size=None)  # the stream yields whole batches
    counts = torch.zeros(num_classes, dtype=torch.long)
    for step, (images, masks) in enumerate(loader):
        print(
            f"batch {step}: images {tuple(images.shape)} {images.dtype} on {images.device}, "
            f"range [{images.min():.2f}, {images.max():.2f}]; masks {tuple(masks.shape)} "
            f"{masks.dtype}, {(masks == IGNORE_INDEX).float().mean():.1%} ignored"
        )
        valid = masks[masks != IGNORE_INDEX].flatten().cpu().long()
        counts += torch.bincount(valid, minlength=num_classes)[:num_classes]
    # ----------------------------------------------------------------------------------

    total = int(counts.sum())
    print(f"\nclass histogram over {len(loader)} batches ({total} labeled pixels):")
    for k, n in enumerate(counts.tolist()):
        share = n / total if total else 0.0
        print(f"  {k:>3} {class_names[k]:<16} {share:7.2%} {'#' * round(40 * share)}")
    return 0


def _default_installed(*kinds: str) -> bool:
    """Whether the default preset's files of ``kinds`` (default: both) are installed."""
    from dgan_data.presets import preset_status

    status = preset_status(DEFAULT_PRESET) if DEFAULT_PRESET in _presets() else None
    return bool(status) and all(
        status[f"{kind}_present"] for kind in kinds or ("generator", "interpreter")
    )


def _presets() -> list[str]:
    from dgan_data.presets import list_presets

    return list_presets()


if __name__ == "__main__":
    run_script(main)
